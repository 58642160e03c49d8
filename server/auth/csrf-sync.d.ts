// csrf-sync ships types its package.json "exports" does not expose under NodeNext resolution;
// this declares the part we use.
declare module 'csrf-sync' {
  import type { Request } from 'express';
  export interface CsrfSync {
    generateToken: (req: Request, overwrite?: boolean) => string;
    isRequestValid: (req: Request) => boolean;
    revokeToken: (req: Request) => void;
  }
  export function csrfSync(opts?: { getTokenFromRequest?: (req: Request) => string | null | undefined; size?: number }): CsrfSync;
}
