/**
 * The V8 flags the broker's node process runs with, wherever it is started (`npm start`, the
 * quick start, the image's entrypoint, the systemd unit, the tests' and benches' broker
 * processes; test/unit/node-flags.test.ts keeps them the same).
 *
 * --no-allocation-site-pretenuring: when saturated (hundreds of requests in flight) most of a
 * request's objects outlive a scavenge, and V8 then allocates them straight into the old
 * generation from their allocation sites on; at ordinary load that made every request's
 * objects old (about 30 KB per desktop request and logoff) and every scavenge walk their
 * pointers (9–11 ms each at 250 requests/s). Without it: 1.3–1.9 ms scavenges, 12 % less CPU
 * per assignment at 250/s, 19 % at 700/s, 4 % saturated (bench:assign, docs/benchmarks.md).
 */
export const BROKER_NODE_FLAGS: readonly string[] = ['--no-allocation-site-pretenuring'];
