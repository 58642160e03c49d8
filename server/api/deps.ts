import type { Broker } from '../broker/index.ts';
import type { HttpAuth, IdentityService } from '../auth/index.ts';
import type { TicketService } from '../tunnel/tickets.ts';
import type { FilesService, ShareService } from '../shares/index.ts';
import type { MachineService } from '../providers/manual/index.ts';
import type { MfaService } from '../auth/mfa/index.ts';
import type { DeviceService } from '../devices/index.ts';
import type { RecordingsRepository } from '../store/index.ts';
import type { ShadowService } from '../broker/shadow.service.ts';
import type { OverviewService } from '../broker/overview.service.ts';

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
  /** The index of session recordings (server/tunnel records; docs/recordings.md). */
  recordings: RecordingsRepository;
  /** Helpdesk shadowing: notice, consent, control (server/broker/shadow.service.ts). */
  shadow: ShadowService;
  /** Overview history, alerts and the session detail page (server/broker/overview.service.ts). */
  overview: OverviewService;
}
