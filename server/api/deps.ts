import type { Broker } from '../broker/index.ts';
import type { HttpAuth, IdentityService } from '../auth/index.ts';

export interface ApiDeps {
  broker: Broker;
  identity: IdentityService;
  auth: HttpAuth;
  version: string;
}
