// Helpdesk shadowing of a live session, as the user lives it: the user always knows (a notice
// in their viewer), may have to allow it first (pool `shadow: 'consent'`; Deny or 30 s without
// an answer refuses), and hands control (keyboard and mouse) to the helpdesk only when they
// accept its request, taking it back whenever they like. Every step is audited:
//   session.shadow.start / .end, session.shadow.consent (allowed | denied | timeout),
//   session.shadow.control_request, session.shadow.control (granted | denied | revoked).
// The state lives in Redis (ShadowRepository) so the helpdesk's replica, the user's and the
// tunnel's agree; tickets are issued only for an admitted shadow (tunnel.router.ts), with
// input allowed only while control is granted. A revocation closes the control tunnels on
// every replica (tunnel event `shadow-revoked`); the helpdesk's viewer reconnects read-only.
import type { Store } from '../store/index.ts';
import type { ShadowRepository, ShadowState } from '../store/shadow.repository.ts';
import { BrokerError } from '../errors.ts';
import { actorName, SYSTEM_ACTOR, type Actor, type AuditService } from './audit.service.ts';
import { hasRole } from './model.ts';

/** The user has this long to allow a shadow or hand over control. */
export const SHADOW_ANSWER_MS = 30_000;
/** A shadow nobody keeps alive (the helpdesk's page polls its status) ends after this. */
export const SHADOW_TTL_SECONDS = 45;

/** What the helpdesk sees of its shadow. */
export interface ShadowView {
  session: string;
  user: string;
  desktop: string;
  policy: 'notify' | 'consent';
  consent: ShadowState['consent'];
  control: ShadowState['control'];
  by: string;
  startedAt: number;
  /** While consent or control is asked: when the question times out (ms epoch); else 0. */
  answerBy: number;
}

/** What the user's viewer sees (GET /me/sessions/{id}/shadow). */
export interface MyShadowView {
  shadowed: boolean;
  by: string;
  consent: ShadowState['consent'] | null;
  control: ShadowState['control'] | null;
  answerBy: number;
  /** The session has ended (the viewer's stream stops). */
  ended: boolean;
}

export class ShadowService {
  constructor(
    private readonly store: Store,
    private readonly repo: ShadowRepository,
    private readonly audit: AuditService,
    private readonly now: () => number = Date.now,
  ) {}

  private async liveSession(actor: Actor, id: string) {
    const s = await this.store.sessions.get(id);
    if (!s || !actor.principal || !hasRole(actor.principal, 'helpdesk')) throw new BrokerError('not_found', 'No such session.');
    return s;
  }

  private target(id: string) {
    return { type: 'session', id };
  }

  /**
   * The stored state with lapsed questions settled: consent not given in time becomes
   * `timeout`, an unanswered control request `none` (each written and audited once, CAS).
   */
  private async current(id: string): Promise<ShadowState | null> {
    for (let i = 0; i < 5; i++) {
      const s = await this.repo.get(id);
      if (!s) return null;
      const now = this.now();
      if (s.consent === 'pending' && now - s.consentAt > SHADOW_ANSWER_MS) {
        const next = await this.repo.cas(s.v, { ...s, consent: 'timeout', consentAt: now }, SHADOW_TTL_SECONDS);
        if (!next) continue;
        await this.audit.record(SYSTEM_ACTOR, 'session.shadow.consent', this.target(id), { answer: 'timeout', by: s.byName }, 'denied');
        return next;
      }
      if (s.control === 'requested' && now - s.controlAt > SHADOW_ANSWER_MS) {
        const next = await this.repo.cas(s.v, { ...s, control: 'none', controlAt: now }, SHADOW_TTL_SECONDS);
        if (!next) continue;
        await this.audit.record(SYSTEM_ACTOR, 'session.shadow.control', this.target(id), { answer: 'timeout', by: s.byName }, 'denied');
        return next;
      }
      return s;
    }
    throw new BrokerError('conflict', 'The shadow changed while it was read; try again.');
  }

  private async view(s: ShadowState): Promise<ShadowView> {
    const session = await this.store.sessions.get(s.session);
    const pending = s.consent === 'pending' ? s.consentAt + SHADOW_ANSWER_MS : s.control === 'requested' ? s.controlAt + SHADOW_ANSWER_MS : 0;
    return { session: s.session, user: session?.user ?? '', desktop: session?.desktop ?? '', policy: s.policy, consent: s.consent, control: s.control, by: s.byName, startedAt: s.startedAt, answerBy: pending };
  }

  /**
   * The helpdesk starts watching: with `notify` at once (the user is told), with `consent`
   * the user is asked. Starting again (a reload) keeps an open shadow of the same person; a
   * refused or lapsed one is asked again.
   */
  async start(actor: Actor, id: string): Promise<ShadowView> {
    const s = await this.liveSession(actor, id);
    if (s.state !== 'connected') throw new BrokerError('conflict', 'The user is not connected; there is nothing to watch.');
    const pool = await this.store.pools.get(s.pool);
    const policy = pool?.shadow ?? 'notify';
    const me = actor.principal!.id;
    for (let i = 0; i < 5; i++) {
      const cur = await this.current(id);
      if (cur && cur.by !== me && (cur.consent === 'allowed' || cur.consent === 'pending')) {
        throw new BrokerError('conflict', `${cur.byName} is shadowing this session already.`);
      }
      if (cur && cur.by === me && (cur.consent === 'allowed' || cur.consent === 'pending') && cur.policy === policy) {
        await this.repo.touch(id, SHADOW_TTL_SECONDS);
        return this.view(cur);
      }
      const now = this.now();
      const next = await this.repo.cas(cur?.v ?? 0, {
        session: id, by: me, byName: actorName(actor), policy, consent: policy === 'notify' ? 'allowed' : 'pending', control: 'none', startedAt: now, consentAt: now, controlAt: 0,
      }, SHADOW_TTL_SECONDS);
      if (!next) continue;
      await this.audit.record(actor, 'session.shadow.start', this.target(id), { user: s.user, desktop: s.desktop, policy, consent: next.consent });
      return this.view(next);
    }
    throw new BrokerError('conflict', 'The shadow changed meanwhile; try again.');
  }

  /** The helpdesk's view of its shadow; polling it keeps the shadow alive. */
  async status(actor: Actor, id: string): Promise<ShadowView> {
    await this.liveSession(actor, id);
    const cur = await this.current(id);
    if (!cur || cur.by !== actor.principal!.id) throw new BrokerError('not_found', 'You are not shadowing this session.');
    await this.repo.touch(id, SHADOW_TTL_SECONDS);
    return this.view(cur);
  }

  /**
   * Before a shadow ticket is issued: the shadow must be allowed (a ticket asked for without a
   * started shadow starts one: notify admits at once, consent answers `shadow_consent_pending`).
   * `control`: the ticket may send input.
   */
  async admit(actor: Actor, id: string): Promise<{ control: boolean }> {
    let cur = await this.current(id);
    if (!cur || cur.by !== actor.principal?.id || cur.consent === 'denied' || cur.consent === 'timeout') {
      if (!cur || cur.by !== actor.principal?.id) await this.start(actor, id);
      cur = await this.current(id);
    }
    if (!cur) throw new BrokerError('conflict', 'The shadow ended; start it again.');
    if (cur.by !== actor.principal?.id) throw new BrokerError('conflict', `${cur.byName} is shadowing this session already.`);
    if (cur.consent === 'pending') throw new BrokerError('shadow_consent_pending', 'Waiting for the user to allow shadowing.');
    if (cur.consent === 'denied') throw new BrokerError('shadow_denied', 'The user declined to be shadowed.');
    if (cur.consent === 'timeout') throw new BrokerError('shadow_consent_timeout', 'The user did not answer within 30 seconds; shadowing was not allowed.');
    await this.repo.touch(id, SHADOW_TTL_SECONDS);
    return { control: cur.control === 'granted' };
  }

  /** The helpdesk asks the user for keyboard and mouse (the shadow is view-only until then). */
  async requestControl(actor: Actor, id: string): Promise<ShadowView> {
    const s = await this.liveSession(actor, id);
    for (let i = 0; i < 5; i++) {
      const cur = await this.current(id);
      if (!cur || cur.by !== actor.principal!.id) throw new BrokerError('not_found', 'You are not shadowing this session.');
      if (cur.consent !== 'allowed') throw new BrokerError('conflict', 'The user has not allowed this shadow.');
      if (cur.control === 'requested' || cur.control === 'granted') return this.view(cur);
      const next = await this.repo.cas(cur.v, { ...cur, control: 'requested', controlAt: this.now() }, SHADOW_TTL_SECONDS);
      if (!next) continue;
      await this.audit.record(actor, 'session.shadow.control_request', this.target(id), { user: s.user, desktop: s.desktop });
      return this.view(next);
    }
    throw new BrokerError('conflict', 'The shadow changed meanwhile; try again.');
  }

  /** The helpdesk stops watching (leaves the shadow page). */
  async end(actor: Actor, id: string): Promise<void> {
    await this.liveSession(actor, id);
    for (let i = 0; i < 5; i++) {
      const cur = await this.repo.get(id);
      if (!cur || cur.by !== actor.principal!.id) return;
      if (!(await this.repo.remove(id, cur.v))) continue;
      if (cur.control === 'granted') await this.store.tickets.publish({ type: 'shadow-revoked', session: id });
      await this.audit.record(actor, 'session.shadow.end', this.target(id), { consent: cur.consent, control: cur.control, seconds: Math.round((this.now() - cur.startedAt) / 1000) });
      return;
    }
  }

  /** What the user's viewer shows: whether they are watched, and any question to answer. */
  async mine(actor: Actor, id: string): Promise<MyShadowView> {
    const s = await this.store.sessions.get(id);
    if (!s || !actor.principal || s.user !== actor.principal.id) throw new BrokerError('not_found', 'No such session.');
    const ended = s.state === 'ended';
    const cur = ended ? null : await this.current(id);
    if (!cur) return { shadowed: false, by: '', consent: null, control: null, answerBy: 0, ended };
    const answerBy = cur.consent === 'pending' ? cur.consentAt + SHADOW_ANSWER_MS : cur.control === 'requested' ? cur.controlAt + SHADOW_ANSWER_MS : 0;
    return { shadowed: cur.consent === 'allowed', by: cur.byName, consent: cur.consent, control: cur.control, answerBy, ended };
  }

  /** The user allows or refuses a pending shadow. */
  async answerConsent(actor: Actor, id: string, allow: boolean): Promise<MyShadowView> {
    await this.mine(actor, id);
    for (let i = 0; i < 5; i++) {
      const cur = await this.current(id);
      if (!cur || cur.consent !== 'pending') throw new BrokerError('conflict', 'Nobody is asking to shadow this session now.');
      const next = await this.repo.cas(cur.v, { ...cur, consent: allow ? 'allowed' : 'denied', consentAt: this.now() }, SHADOW_TTL_SECONDS);
      if (!next) continue;
      await this.audit.record(actor, 'session.shadow.consent', this.target(id), { answer: allow ? 'allowed' : 'denied', by: cur.byName }, allow ? 'ok' : 'denied');
      return this.mine(actor, id);
    }
    throw new BrokerError('conflict', 'The shadow changed meanwhile; try again.');
  }

  /**
   * The user answers a control request (allow: grant, else deny), or takes control back
   * (allow false while granted: revoked; the helpdesk's input stops at once on every replica).
   */
  async answerControl(actor: Actor, id: string, allow: boolean): Promise<MyShadowView> {
    await this.mine(actor, id);
    for (let i = 0; i < 5; i++) {
      const cur = await this.current(id);
      if (!cur || cur.consent !== 'allowed') throw new BrokerError('conflict', 'Nobody is shadowing this session now.');
      let control: ShadowState['control'];
      if (cur.control === 'requested') control = allow ? 'granted' : 'denied';
      else if (cur.control === 'granted' && !allow) control = 'revoked';
      else throw new BrokerError('conflict', allow ? 'The helpdesk has not asked for control.' : 'The helpdesk does not have control.');
      const next = await this.repo.cas(cur.v, { ...cur, control, controlAt: this.now() }, SHADOW_TTL_SECONDS);
      if (!next) continue;
      if (control === 'revoked') await this.store.tickets.publish({ type: 'shadow-revoked', session: id });
      await this.audit.record(actor, 'session.shadow.control', this.target(id), { answer: control, by: cur.byName }, control === 'granted' ? 'ok' : 'denied');
      return this.mine(actor, id);
    }
    throw new BrokerError('conflict', 'The shadow changed meanwhile; try again.');
  }
}
