// Where a guacd-protocol server listens, and its address as one string ("unix:/run/x.sock",
// "127.0.0.1:4822", "[::1]:4822"): what the tunnel records on a session so a shadow on any
// replica finds the gateway holding the connection, and what a grant names as its gateway.
export type GuacdEndpoint = { host: string; port: number } | { path: string };

export function endpointAddress(e: GuacdEndpoint): string {
  if ('path' in e) return `unix:${e.path}`;
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

/** The endpoint an address names, or null. */
export function parseEndpointAddress(s: string | undefined): GuacdEndpoint | null {
  if (!s) return null;
  if (s.startsWith('unix:')) return s.length > 5 ? { path: s.slice(5) } : null;
  const m = /^(.*):(\d{1,5})$/.exec(s);
  if (!m || !m[1] || Number(m[2]) < 1 || Number(m[2]) > 65535) return null;
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}
