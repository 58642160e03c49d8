// Local accounts: argon2id hashes kept by the broker (server/auth/passwords.ts).
import type { StoredUser } from '../../store/index.ts';
import type { Passwords } from '../passwords.ts';
import { refuse } from './refusal.ts';
import type { DirectoryIdentity, PasswordAuthenticator } from './types.ts';

export const LOCAL = 'local';

export class LocalAuthenticator implements PasswordAuthenticator {
  readonly kind = 'local' as const;
  readonly name = LOCAL;
  readonly groupCacheSeconds = 0;

  constructor(
    private readonly users: { get(id: string): Promise<StoredUser | null> },
    private readonly passwords: Passwords,
    readonly label: string,
    readonly domains: string[],
  ) {}

  async authenticate(username: string, password: string): Promise<DirectoryIdentity> {
    const u = username ? await this.users.get(username) : null;
    // Verified even for unknown users (against a dummy hash): the same answer in the same time.
    const ok = await this.passwords.verify(u?.passwordHash ?? null, password);
    if (!u) throw refuse('invalid_credentials', 'unknown user');
    // A directory user has no local password; its empty hash never verifies, but say why.
    if ((u.source ?? LOCAL) !== LOCAL) throw refuse('invalid_credentials', `not a local account (belongs to ${u.source})`);
    if (!ok) throw refuse('invalid_credentials', 'wrong password');
    if (u.disabled) throw refuse('invalid_credentials', 'disabled');
    return { source: LOCAL, username: u.id, displayName: u.displayName, groups: u.groups };
  }
}
