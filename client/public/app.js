// Minimal portal until the full web client lands: log in, see entitled pools, request a
// desktop, log a session off. Talks only to /api/v1.
const $ = (id) => document.getElementById(id);
let csrf = '';

async function api(method, path, body) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    credentials: 'same-origin',
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(csrf ? { 'x-csrf-token': csrf } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw Object.assign(new Error(data?.error?.message ?? `HTTP ${res.status}`), { code: data?.error?.code, status: res.status });
  return data;
}

function say(text) {
  $('message').textContent = text;
}

async function showPortal() {
  const me = await api('GET', '/me');
  csrf = me.csrfToken ?? csrf;
  $('who').textContent = me.user.displayName;
  $('login').hidden = true;
  $('portal').hidden = false;
  const { pools } = await api('GET', '/me/pools');
  const list = $('pools');
  list.replaceChildren();
  if (pools.length === 0) list.append(Object.assign(document.createElement('li'), { textContent: 'You are not entitled to any pool yet.' }));
  for (const p of pools) {
    const li = document.createElement('li');
    const state = p.desktop ? `${p.desktop.name}: ${p.desktop.state}` : 'no desktop yet';
    li.textContent = `${p.displayName} (${state}) `;
    const get = Object.assign(document.createElement('button'), { type: 'button', textContent: p.desktop ? 'Open' : 'Get a desktop', disabled: !p.available });
    get.addEventListener('click', async () => {
      try {
        const r = await api('POST', `/me/pools/${encodeURIComponent(p.name)}/request`);
        say(`${r.desktop.name} is ${r.state === 'in_use' ? 'ready' : 'being prepared'}.`);
      } catch (e) {
        say(e.message);
      }
      showPortal();
    });
    li.append(get);
    if (p.desktop?.session) {
      const off = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Log off' });
      off.addEventListener('click', async () => {
        await api('POST', `/me/sessions/${p.desktop.session}/logoff`).catch((e) => say(e.message));
        showPortal();
      });
      li.append(' ', off);
    }
    list.append(li);
  }
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const r = await api('POST', '/auth/login', { username: f.get('username'), password: f.get('password') });
    csrf = r.csrfToken;
    say('');
    await showPortal();
  } catch (e) {
    say(e.code === 'invalid_credentials' ? 'Wrong user name or password.' : e.code === 'account_locked' || e.code === 'too_many_attempts' ? 'Too many failed attempts; wait a few minutes.' : `The broker cannot log you in right now (${e.message}).`);
  }
});

$('logout').addEventListener('click', async () => {
  await api('POST', '/auth/logout').catch(() => undefined);
  csrf = '';
  $('portal').hidden = true;
  $('login').hidden = false;
});

showPortal().catch(() => {
  $('login').hidden = false;
});
