// The parts of guacamole-common-js 1.5 the client uses (the package ships no types).
declare module 'guacamole-common-js' {
  namespace Guacamole {
    class Status {
      code: number;
      message?: string;
      isError(): boolean;
    }
    class Tunnel {
      onerror: ((status: Status) => void) | null;
      onstatechange: ((state: number) => void) | null;
    }
    class WebSocketTunnel extends Tunnel {
      constructor(url: string);
    }
    class InputStream {}
    class OutputStream {}
    class StringReader {
      constructor(stream: InputStream);
      ontext: ((text: string) => void) | null;
      onend: (() => void) | null;
    }
    class StringWriter {
      constructor(stream: OutputStream);
      sendText(text: string): void;
      sendEnd(): void;
    }
    class Layer {
      getCanvas(): HTMLCanvasElement;
    }
    class Display {
      getElement(): HTMLElement;
      getWidth(): number;
      getHeight(): number;
      getScale(): number;
      scale(scale: number): void;
      getDefaultLayer(): Layer;
      onresize: ((width: number, height: number) => void) | null;
      showCursor(shown: boolean): void;
      flatten(): HTMLCanvasElement;
      /** Runs the callback once everything queued so far is drawn. */
      flush(callback?: () => void): void;
    }
    class Client {
      constructor(tunnel: Tunnel);
      connect(data?: string): void;
      disconnect(): void;
      getDisplay(): Display;
      sendSize(width: number, height: number): void;
      sendKeyEvent(pressed: 0 | 1 | boolean, keysym: number): void;
      sendMouseState(state: Mouse.State, applyDisplayScale?: boolean): void;
      createClipboardStream(mimetype: string): OutputStream;
      onstatechange: ((state: number) => void) | null;
      onerror: ((status: Status) => void) | null;
      onclipboard: ((stream: InputStream, mimetype: string) => void) | null;
      onname: ((name: string) => void) | null;
      /** After a frame (a `sync`) was drawn. */
      onsync: ((timestamp: number) => void) | null;
    }
    interface MouseEvent {
      state: Mouse.State;
    }
    class Mouse {
      constructor(element: HTMLElement);
      onEach(types: string[], listener: (e: MouseEvent) => void): void;
    }
    namespace Mouse {
      class State {}
      class Touchscreen {
        constructor(element: HTMLElement);
        onEach(types: string[], listener: (e: MouseEvent) => void): void;
      }
    }
    class Keyboard {
      constructor(element?: HTMLElement | Document);
      onkeydown: ((keysym: number) => boolean | void) | null;
      onkeyup: ((keysym: number) => void) | null;
      reset(): void;
    }
  }
  export default Guacamole;
}
