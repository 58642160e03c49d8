// Run inside a host's network namespace (nsenter): the VNC console at HOST PORT refuses a wrong
// password and accepts PASSWORD. Prints "ok" or exits non-zero with the reason.
import { RfbClient } from '../../server/gateway/rfb.client.ts';

const [host, port, password] = process.argv.slice(2) as [string, string, string];
try {
  await RfbClient.connect({ host, port: Number(port), password: 'wrong-pw', encodings: [0], timeoutMs: 5000 }).then(
    (c) => {
      c.close();
      throw new Error('a wrong password was accepted');
    },
    (e: Error) => {
      if (e.message === 'a wrong password was accepted') throw e;
    },
  );
  const c = await RfbClient.connect({ host, port: Number(port), password, encodings: [0], timeoutMs: 5000 });
  c.close();
  process.stdout.write('ok\n');
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(1);
}
