// OpenID Connect single sign-on with openid-client: discovery (lazy, retried while the IdP is
// down), authorization code with PKCE (S256), state and nonce kept in the pre-login HTTP
// session and used once, id_token checks (issuer, audience, expiry with a clock tolerance,
// nonce), optional userinfo, groups from a configurable (nested) claim, RP-initiated logout.
import { readFileSync } from 'node:fs';
import * as oidc from 'openid-client';
import type { OidcAuthenticatorConfig } from '../../config/schema.ts';
import { normaliseUsername } from '../usernames.ts';
import type { AuthenticatorDeps } from './index.ts';
import { LoginRefused } from './refusal.ts';
import type { AuthenticatorTestResult, DirectoryIdentity, RedirectAuthenticator } from './types.ts';

/** What the IdP vouched for: the design's DirectoryIdentity, plus what only OIDC has. */
export interface OidcIdentity extends DirectoryIdentity {
  /** The OIDC `sub`. */
  externalId: string;
  /** `amr` (in DirectoryIdentity) and `acr` are passed on only when the authenticator trusts the IdP's MFA. */
  acr?: string;
  /** Kept in the server-side session as the hint of RP-initiated logout; never logged. */
  idToken: string;
}

/** One started login, kept server-side in the pre-login session under its state. */
export interface OidcTransaction {
  authenticator: string;
  codeVerifier: string;
  nonce: string;
  /** ms since the epoch */
  startedAt: number;
  returnTo: string;
}

/** The part of the HTTP session this authenticator reads and writes. */
export interface OidcSessionData {
  oidcLogins?: Record<string, OidcTransaction>;
  /** Set by the login pipeline (HttpAuth.completeLogin): the authenticator of the login and its id_token. */
  authMethod?: string;
  idToken?: string;
}

function sessionOf(req: unknown): OidcSessionData {
  const s = (req as { session?: OidcSessionData }).session;
  if (!s) throw new Error('the pre-login session is not loaded');
  return s;
}

const isLoopbackUrl = (u: string) => /^(127(?:\.\d{1,3}){3}|\[::1\]|localhost)$/i.test(new URL(u).hostname);
const GROUP_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;

// At most this many logins may be in flight in one browser (several tabs); older ones are dropped.
const MAX_PENDING = 5;
// Bounds on what an IdP can make the broker store.
const MAX_GROUPS = 500;
const MAX_GROUP_LENGTH = 256;

/** A claim by name, or by dotted path into nested objects (`realm_access.roles`). */
export function claimAt(claims: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let v: unknown = claims;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/**
 * Broker group ids for a groups claim value (a list of strings, or one string; anything else is
 * no groups): names in `map` become their mapped id; others lower-cased when that is a valid
 * group id (dropped otherwise, or all of them with `onlyMapped`).
 */
export function groupsFrom(value: unknown, map: Record<string, string> = {}, onlyMapped = false): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
  const out = new Set<string>();
  for (const g of list) {
    if (typeof g !== 'string' || g.length === 0 || g.length > MAX_GROUP_LENGTH) continue;
    const id = Object.hasOwn(map, g) ? map[g]! : onlyMapped ? '' : g.toLowerCase();
    if (GROUP_ID.test(id)) out.add(id);
    if (out.size >= MAX_GROUPS) break;
  }
  return [...out];
}

function readSecret(c: OidcAuthenticatorConfig, env: NodeJS.ProcessEnv): string {
  if (c.clientSecretEnv !== undefined) {
    const v = env[c.clientSecretEnv];
    if (!v) throw new Error(`auth.authenticators.${c.name}.clientSecretEnv: the environment variable ${c.clientSecretEnv} is not set`);
    return v;
  }
  if (c.clientSecretFile !== undefined) {
    try {
      return readFileSync(c.clientSecretFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`auth.authenticators.${c.name}.clientSecretFile: cannot read ${c.clientSecretFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return c.clientSecret;
}

/** True when the IdP could not be reached or answered like a server in trouble (not a refusal). */
function isUnreachable(err: unknown): boolean {
  if (err instanceof oidc.ClientError && (err.code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || err.code === 'OAUTH_RESPONSE_IS_NOT_JSON')) return true;
  for (let e: unknown = err, i = 0; e instanceof Error && i < 5; e = e.cause, i++) {
    if (e.name === 'TimeoutError' || e.name === 'AbortError' || (e instanceof TypeError && e.message === 'fetch failed')) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|UND_ERR_)/.test(code)) return true;
  }
  return false;
}

export interface OidcAuthenticatorOptions {
  /** The broker's public URL (server.publicUrl), for the default redirect URIs. */
  publicUrl: string;
  env?: NodeJS.ProcessEnv;
  now?: () => number;
}

export class OidcAuthenticator implements RedirectAuthenticator {
  readonly kind = 'oidc' as const;
  readonly name: string;
  readonly label: string;
  readonly trustIdpMfa: boolean;
  readonly groupCacheSeconds: number;
  private readonly unreachable: string;
  private readonly clientSecret: string;
  private readonly redirectUri: string;
  private readonly postLogoutRedirectUri: string;
  private discovered: Promise<oidc.Configuration> | null = null;
  private readonly now: () => number;

  constructor(
    private readonly c: OidcAuthenticatorConfig,
    o: OidcAuthenticatorOptions,
  ) {
    this.name = c.name;
    this.label = c.label;
    this.trustIdpMfa = c.trustIdpMfa;
    this.groupCacheSeconds = c.groupCacheSeconds;
    this.unreachable = `The identity provider "${c.label}" cannot be reached; try again shortly.`;
    this.clientSecret = readSecret(c, o.env ?? process.env);
    const base = o.publicUrl.replace(/\/$/, '');
    if (!c.redirectUri && !base) throw new Error(`auth.authenticators.${c.name}.redirectUri: required when server.publicUrl is not set`);
    this.redirectUri = c.redirectUri || `${base}/api/v1/auth/oidc/${encodeURIComponent(c.name)}/callback`;
    this.postLogoutRedirectUri = c.postLogoutRedirectUri || (base ? `${base}/` : new URL('/', this.redirectUri).href);
    this.now = o.now ?? Date.now;
  }

  /** The IdP's metadata, discovered at the first use and again after a failure (an IdP down at startup stops nothing). */
  private configuration(): Promise<oidc.Configuration> {
    this.discovered ??= (async () => {
      const metadata: Partial<oidc.ClientMetadata> = { [oidc.clockTolerance]: this.c.clockToleranceSeconds };
      const auth = this.clientSecret ? oidc.ClientSecretBasic(this.clientSecret) : oidc.None();
      const execute = isLoopbackUrl(this.c.issuer) ? [oidc.allowInsecureRequests] : [];
      const config = await oidc.discovery(new URL(this.c.issuer), this.c.clientId, metadata, auth, { execute, timeout: this.c.timeoutSeconds });
      config.timeout = this.c.timeoutSeconds;
      return config;
    })().catch((err: unknown) => {
      this.discovered = null;
      throw new LoginRefused('directory_unavailable', `discovery failed: ${describe(err)}`, { message: this.unreachable, cause: err });
    });
    return this.discovered;
  }

  /** The settings the admin console shows: everything but the client secret (only whether there is one, and where from). */
  describe(): Record<string, unknown> {
    const { clientSecret: _s, clientSecretEnv, clientSecretFile, ...rest } = this.c;
    const secret = clientSecretEnv !== undefined ? `env ${clientSecretEnv}` : clientSecretFile !== undefined ? `file ${clientSecretFile}` : this.clientSecret ? 'inline' : 'none (public client)';
    return { ...rest, clientSecret: secret, redirectUri: this.redirectUri, postLogoutRedirectUri: this.postLogoutRedirectUri };
  }

  /** "Test connection": the IdP's discovery document is read afresh. */
  async test(): Promise<AuthenticatorTestResult> {
    const t0 = this.now();
    this.discovered = null;
    try {
      const meta = (await this.configuration()).serverMetadata();
      return { ok: true, server: this.c.issuer, milliseconds: this.now() - t0, message: `discovery ok: issuer ${meta.issuer}${meta.end_session_endpoint ? ', RP-initiated logout supported' : ''}` };
    } catch (err) {
      return { ok: false, server: this.c.issuer, milliseconds: this.now() - t0, message: err instanceof LoginRefused ? err.reason : 'discovery failed' };
    }
  }

  /** Starts a login: the IdP's authorization URL; the transaction goes into the pre-login session. */
  async begin(session: OidcSessionData, returnTo = '/'): Promise<{ url: string }> {
    const config = await this.configuration();
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: this.c.scopes.join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const pending = Object.entries(session.oidcLogins ?? {})
      .filter(([, t]) => this.now() - t.startedAt < this.c.loginTimeoutSeconds * 1000)
      .sort(([, a], [, b]) => a.startedAt - b.startedAt)
      .slice(-(MAX_PENDING - 1));
    session.oidcLogins = Object.fromEntries([...pending, [state, { authenticator: this.name, codeVerifier, nonce, startedAt: this.now(), returnTo }]]);
    return { url: url.href };
  }

  /**
   * Finishes a login from the IdP's redirect. The transaction named by `state` is taken out of
   * the session before anything else (single use: a replayed callback finds nothing), then the
   * code is exchanged and the id_token checked (signature, issuer, audience, expiry, nonce).
   */
  async finish(session: OidcSessionData, currentUrl: URL): Promise<{ identity: OidcIdentity; returnTo: string; startedAt: number }> {
    const state = currentUrl.searchParams.get('state') ?? '';
    const tx = state && Object.hasOwn(session.oidcLogins ?? {}, state) ? session.oidcLogins![state]! : undefined;
    if (session.oidcLogins && tx) delete session.oidcLogins[state];
    if (!tx || tx.authenticator !== this.name) throw new LoginRefused('sso_state_invalid', state ? 'unknown, used or tampered state' : 'no state');
    if (this.now() - tx.startedAt > this.c.loginTimeoutSeconds * 1000) throw new LoginRefused('sso_state_invalid', 'login took too long at the identity provider');
    const idpError = currentUrl.searchParams.get('error');
    if (idpError) {
      const code = /^[\x20-\x7E]{1,64}$/.test(idpError) ? idpError : 'invalid';
      throw new LoginRefused('sso_failed', `identity provider answered ${code}`, { message: `The identity provider "${this.label}" did not log you in (${code}).` });
    }
    const config = await this.configuration();
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, currentUrl, { pkceCodeVerifier: tx.codeVerifier, expectedNonce: tx.nonce, expectedState: state, idTokenExpected: true }, { redirect_uri: this.redirectUri });
    } catch (err) {
      if (isUnreachable(err)) throw new LoginRefused('directory_unavailable', `token request failed: ${describe(err)}`, { message: this.unreachable, cause: err });
      throw new LoginRefused('sso_failed', describe(err), { cause: err });
    }
    const idClaims = tokens.claims();
    if (!idClaims || !tokens.id_token) throw new LoginRefused('sso_failed', 'no id_token');
    let claims: Record<string, unknown> = { ...idClaims };
    if (this.c.userinfo && config.serverMetadata().userinfo_endpoint) {
      try {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub);
        claims = { ...info, ...idClaims };
      } catch (err) {
        if (isUnreachable(err)) throw new LoginRefused('directory_unavailable', `userinfo failed: ${describe(err)}`, { message: this.unreachable, cause: err });
        throw new LoginRefused('sso_failed', `userinfo refused: ${describe(err)}`, { cause: err });
      }
    }
    const claimed = claimAt(claims, this.c.usernameClaim);
    if (typeof claimed !== 'string' || !claimed) {
      throw new LoginRefused('sso_failed', `no ${this.c.usernameClaim} claim`, { message: `The identity provider "${this.label}" did not say who you are (no ${this.c.usernameClaim}).` });
    }
    // The same rule as typed names: `ａdmin` from an IdP must not become `admin`.
    const username = normaliseUsername(claimed);
    if (!username) {
      throw new LoginRefused('sso_failed', `${this.c.usernameClaim} "${claimed.slice(0, 80)}" cannot be a broker user name`, { message: `Your user name at "${this.label}" cannot be used here; ask the helpdesk.` });
    }
    const str = (k: string) => (typeof claims[k] === 'string' && claims[k] ? (claims[k] as string) : undefined);
    const amr = Array.isArray(idClaims.amr) ? idClaims.amr.filter((m): m is string => typeof m === 'string') : [];
    const identity: OidcIdentity = {
      source: this.name,
      username,
      displayName: str('name') ?? username,
      groups: groupsFrom(claimAt(claims, this.c.groupsClaim), this.c.groupMap, this.c.onlyMappedGroups),
      externalId: idClaims.sub,
      idToken: tokens.id_token,
    };
    const email = str('email');
    if (email) identity.email = email;
    if (this.trustIdpMfa) {
      identity.amr = amr;
      if (typeof idClaims.acr === 'string') identity.acr = idClaims.acr;
    }
    return { identity, returnTo: tx.returnTo, startedAt: tx.startedAt };
  }

  /**
   * The URL the IdP redirected the browser to, rebuilt from the configured redirect URI and the
   * request's query (never from the Host header, which the client chooses).
   */
  callbackUrlOf(requestUrl: string): URL {
    const url = new URL(this.redirectUri);
    url.search = new URL(requestUrl, 'http://x').search;
    return url;
  }

  // The registry's interface (types.ts), over an express request whose session is loaded.
  start(ctx: { req: unknown; res: unknown }): Promise<{ url: string }> {
    return this.begin(sessionOf(ctx.req));
  }

  async callback(ctx: { req: unknown; res: unknown }): Promise<OidcIdentity> {
    return (await this.finish(sessionOf(ctx.req), this.callbackUrlOf((ctx.req as { originalUrl: string }).originalUrl))).identity;
  }

  /**
   * RP-initiated logout of a session that logged in here: the IdP's end-session URL with the
   * id_token as hint when the session kept it, else with client_id only.
   */
  logoutUrl(ctx: { req: unknown; res: unknown }): Promise<string | undefined> {
    const s = sessionOf(ctx.req);
    return this.endSessionUrl(s.authMethod === this.name ? s.idToken : undefined);
  }

  /** The IdP's end-session URL, or undefined when the IdP has none (or cannot be reached). */
  async endSessionUrl(idTokenHint: string | undefined): Promise<string | undefined> {
    const config = await this.configuration().catch(() => null);
    if (!config?.serverMetadata().end_session_endpoint) return undefined;
    const params: Record<string, string> = { post_logout_redirect_uri: this.postLogoutRedirectUri, client_id: this.c.clientId };
    if (idTokenHint) params.id_token_hint = idTokenHint;
    return oidc.buildEndSessionUrl(config, params).href;
  }
}

/** An error's code and message for the audit trail (never a token or a secret: openid-client puts neither in messages). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const body = err instanceof oidc.ResponseBodyError ? ` (${err.error})` : '';
  // Which id_token claim failed (nonce, aud, iss, exp…) is in the cause; its values are left out.
  const cause = err.cause;
  const claim = cause && typeof cause === 'object' && typeof (cause as { claim?: unknown }).claim === 'string' ? ` (claim ${(cause as { claim: string }).claim})` : '';
  const inner = cause instanceof Error ? `: ${cause.message}` : '';
  return `${typeof code === 'string' ? `${code}: ` : ''}${err.message}${body}${claim}${inner}`.slice(0, 300);
}

/** The factory index.ts registers for `kind: oidc`. */
export function createOidcAuthenticator(c: OidcAuthenticatorConfig, deps: AuthenticatorDeps): OidcAuthenticator {
  return new OidcAuthenticator(c, { publicUrl: deps.publicUrl });
}
