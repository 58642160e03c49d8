import type { Broker } from '../broker/index.ts';
import type { HttpAuth, IdentityService } from '../auth/index.ts';
import type { TicketService } from '../tunnel/tickets.ts';
import type { FilesService, ShareService } from '../shares/index.ts';
import type { MachineService } from '../providers/manual/index.ts';
import type { MfaService } from '../auth/mfa/index.ts';
import type { DeviceService } from '../devices/index.ts';

export interface ApiDeps {
  broker: Broker;
  identity: IdentityService;
  auth: HttpAuth;
  version: string;
  /** Connection tickets for the Guacamole tunnel. */
  tickets: TicketService;
  /** The user's files on the shares (server/shares). */
  files: FilesService;
  shares: ShareService;
  /** Machines of manual pools (server/providers/manual). */
  machines: MachineService;
  /** Second factors (server/auth/mfa) and server.publicUrl, the passkeys' relying party. */
  mfa: MfaService;
  publicUrl: string;
  /** Enrolled thin-client devices (server/devices). */
  devices: DeviceService;
}
