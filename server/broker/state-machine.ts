// The desktop state machine: the one place that says which state changes are legal.
// The store compiles this table into its Lua scripts, so Redis refuses an illegal change
// atomically, whichever module asked for it. docs/state-machine.md draws it.

export const DESKTOP_STATES = [
  'provisioning', // being cloned and booted by its provider
  'ready', // booted, owned by nobody, can be handed out
  'assigned', // owned by a user, no live session (dedicated desktops between logins)
  'in_use', // a live session (starting, connected or disconnected) holds it
  'refreshing', // being reverted to a clean clone of its image
  'deleting', // being destroyed in its provider
  'deleted', // gone; the record expires after the retention period
  'error', // quarantined after repeated failures or found broken; only the helpdesk moves it on
] as const;

export type DesktopState = (typeof DESKTOP_STATES)[number];

/**
 * `settled` is not a state: it asks the store to pick, atomically, where a desktop goes once
 * its provider work is done: in_use if a live session holds it, assigned if a user owns it,
 * else ready. It avoids a race with a user being handed the desktop meanwhile.
 */
export type TransitionTarget = DesktopState | 'settled';

export const TRANSITIONS: Readonly<Record<DesktopState, readonly DesktopState[]>> = {
  provisioning: ['ready', 'assigned', 'in_use', 'error', 'deleting'],
  ready: ['in_use', 'assigned', 'refreshing', 'deleting', 'error'],
  assigned: ['in_use', 'ready', 'refreshing', 'deleting', 'error'],
  in_use: ['assigned', 'ready', 'refreshing', 'deleting', 'error'],
  refreshing: ['ready', 'assigned', 'in_use', 'deleting', 'error'],
  deleting: ['deleted', 'error'],
  deleted: [],
  error: ['refreshing', 'deleting'],
};

/** States in which a desktop counts against its pool and occupies a name and a MAC. */
export const LIVE_STATES: readonly DesktopState[] = DESKTOP_STATES.filter((s) => s !== 'deleted');

/** States whose provider work the lifecycle reconciler drives. */
export const WORK_STATES: readonly DesktopState[] = ['provisioning', 'refreshing', 'deleting'];

export function canTransition(from: DesktopState, to: DesktopState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isDesktopState(s: string): s is DesktopState {
  return (DESKTOP_STATES as readonly string[]).includes(s);
}

/** The table as a Lua literal, for the store's scripts. */
export function transitionsAsLua(): string {
  const rows = DESKTOP_STATES.map((from) => `${from}={${TRANSITIONS[from].map((to) => `${to}=true`).join(',')}}`);
  return `{${rows.join(',')}}`;
}

/** Mermaid source of the diagram in docs/state-machine.md (a test keeps the doc current). */
export function stateDiagramMermaid(): string {
  const lines = ['stateDiagram-v2', '    [*] --> provisioning'];
  for (const from of DESKTOP_STATES) for (const to of TRANSITIONS[from]) lines.push(`    ${from} --> ${to}`);
  lines.push('    deleted --> [*]');
  return lines.join('\n');
}
