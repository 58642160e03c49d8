// "This session is recorded": shown in the viewer when the pool's recording policy is 'notify'
// (the connect answer's `recording: 'notify'`, docs/recordings.md). To mount it in Viewer.tsx:
//   const [ticket, recording] = useRecordingFlag(props.ticket);   // pass `ticket` to the viewer instead of props.ticket
//   <RecordingNotice recording={recording} />                      // in the toolbar / over the screen
import { useRef, useState } from 'preact/hooks';
import { t } from '../i18n/index.ts';

export type RecordingFlag = boolean | 'notify' | undefined;

export function RecordingNotice(props: { recording: RecordingFlag }) {
  if (props.recording !== 'notify') return null;
  return (
    <p class="recording-notice" role="status" data-testid="recording-notice">
      <span aria-hidden="true">●</span>{' '}{t('recnotice.thisSessionIsRecorded')}</p>
  );
}

/** Wraps the viewer's ticket function (stable identity) and remembers the last answer's `recording`. */
export function useRecordingFlag<T extends object>(ticket: () => Promise<T>): [() => Promise<T>, RecordingFlag] {
  const [recording, setRecording] = useState<RecordingFlag>(undefined);
  const latest = useRef(ticket);
  latest.current = ticket;
  const wrapped = useRef(async () => {
    const t = await latest.current();
    // The connect answer carries `recording` (the viewer's own type does not name it).
    setRecording((t as { recording?: RecordingFlag }).recording);
    return t;
  });
  return [wrapped.current, recording];
}
