// Hardware virtualisation: is KVM there and usable, and if not, why — and what TCG costs.
import fs from 'node:fs';
import { probeKvm } from '../providers/qemu/machine.ts';
import { Virsh } from '../providers/libvirt/index.ts';
import type { LibvirtProviderConfig } from '../config/schema.ts';
import { type CheckFamily, type CheckResult, fail, ok, skipped, warn } from './types.ts';

const TCG_COST = 'Under TCG (software emulation) guest CPU work runs roughly 5-20x slower than under KVM: desktops boot in tens of seconds instead of seconds, and a host carries far fewer of them.';

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** What the machine says about virtualisation, without starting anything. */
export function kvmFacts(): { vendor: 'intel' | 'amd' | 'none'; underHypervisor: boolean; module: string | null; nested: string | null; device: 'missing' | 'no-access' | 'ok'; deviceCode?: string } {
  const flags = new Set((read('/proc/cpuinfo') ?? '').split('\n').find((l) => l.startsWith('flags'))?.split(':')[1]?.trim().split(/\s+/) ?? []);
  const vendor = flags.has('vmx') ? 'intel' : flags.has('svm') ? 'amd' : 'none';
  const module = fs.existsSync('/sys/module/kvm_intel') ? 'kvm_intel' : fs.existsSync('/sys/module/kvm_amd') ? 'kvm_amd' : fs.existsSync('/sys/module/kvm') ? 'kvm' : null;
  const nested = module && module !== 'kvm' ? (read(`/sys/module/${module}/parameters/nested`)?.trim() ?? null) : null;
  let device: 'missing' | 'no-access' | 'ok' = 'ok';
  let deviceCode: string | undefined;
  if (!fs.existsSync('/dev/kvm')) device = 'missing';
  else {
    try {
      fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    } catch (e) {
      device = 'no-access';
      deviceCode = (e as NodeJS.ErrnoException).code;
    }
  }
  return { vendor, underHypervisor: flags.has('hypervisor'), module, nested, device, ...(deviceCode ? { deviceCode } : {}) };
}

let probe: Promise<{ ok: true } | { ok: false; reason: string }> | undefined;
let probedAt = 0;

/** The KVM probe QEMU desktops rely on (a vCPU really runs), cached for a minute. */
function kvmProbe(binary: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (!probe || Date.now() - probedAt > 60_000) {
    probedAt = Date.now();
    probe = probeKvm(binary);
  }
  return probe;
}

/** Why KVM does not work, in plain words, and what to do. */
export function explainKvm(facts: ReturnType<typeof kvmFacts>, reason: string): { message: string; fix: string; cause: string } {
  if (facts.device === 'missing') {
    if (facts.vendor === 'none') {
      return facts.underHypervisor
        ? { cause: 'nested_off', message: 'no /dev/kvm and the CPU shows no vmx/svm flag: this machine is itself a VM whose hypervisor does not pass virtualisation through (nested virtualisation off)', fix: 'Turn on nested virtualisation for this VM in its hypervisor (e.g. "expose hardware-assisted virtualisation", kvm_intel nested=1 on the outer host), or run desktops on bare-metal hosts.' }
        : { cause: 'no_vt', message: 'no /dev/kvm and the CPU shows no vmx/svm flag: virtualisation (VT-x/AMD-V) is off in the firmware or missing', fix: 'Turn on Intel VT-x / AMD-V (SVM) in the BIOS/UEFI setup, then load the kvm module.' };
    }
    return { cause: 'module_missing', message: `no /dev/kvm although the CPU has ${facts.vendor === 'intel' ? 'vmx' : 'svm'}: the ${facts.vendor === 'intel' ? 'kvm_intel' : 'kvm_amd'} module is not loaded`, fix: `modprobe ${facts.vendor === 'intel' ? 'kvm_intel' : 'kvm_amd'} (and add it to /etc/modules); in a container, pass --device /dev/kvm.` };
  }
  if (facts.device === 'no-access') {
    return { cause: 'permission', message: `/dev/kvm exists but the broker's user may not open it (${facts.deviceCode})`, fix: 'Add the broker\'s user to the kvm group (usermod -aG kvm USER) or give the container /dev/kvm with the right group.' };
  }
  if (/MSR/i.test(reason)) {
    return { cause: 'msr', message: `KVM opens but a vCPU cannot run: ${reason}. This happens under a hypervisor whose nested virtualisation does not emulate the MSRs QEMU sets (the outer hypervisor refuses them)`, fix: 'Turn on full nested virtualisation on the outer hypervisor (or use a newer one), or run desktops on bare-metal hosts; until then desktops run under TCG.' };
  }
  if (facts.underHypervisor && facts.nested === 'N') {
    return { cause: 'nested_off', message: `KVM does not run a vCPU (${reason}); this is a VM with nested virtualisation off`, fix: 'Enable nested virtualisation on the outer host (kvm_intel nested=1 / kvm_amd nested=1).' };
  }
  return { cause: 'probe_failed', message: `KVM does not run a vCPU: ${reason}`, fix: 'Check dmesg for kvm errors and the QEMU version; desktops run under TCG meanwhile.' };
}

export const kvmChecks: CheckFamily = async (ctx) => {
  const out: CheckResult[] = [];
  const qemus = ctx.config.providers.filter((p) => p.kind === 'qemu');
  if (qemus.length) {
    const facts = kvmFacts();
    const r = await kvmProbe('qemu-system-x86_64');
    for (const p of qemus) {
      const target = `${p.name} (this machine)`;
      const details = { accel: p.accel, ...facts };
      if (r.ok) out.push(ok('kvm.qemu', target, 'KVM works: a vCPU runs under hardware virtualisation', { ...details, kvm: true }));
      else {
        const why = explainKvm(facts, r.reason);
        const inUse = p.accel === 'kvm' ? 'the provider is configured with accel: kvm, so desktops will not start' : 'desktops run under TCG';
        const res = p.accel === 'kvm' ? fail : warn;
        out.push(res('kvm.qemu', target, `${why.message}; ${inUse}. ${TCG_COST}`, why.fix, { ...details, kvm: false, reason: r.reason, cause: why.cause }));
      }
    }
  }
  for (const p of ctx.config.providers.filter((x): x is LibvirtProviderConfig => x.kind === 'libvirt')) {
    const virsh = new Virsh('virsh', ctx.timeoutMs);
    await Promise.all(p.hosts.map(async (h) => {
      const target = `${p.name}/${h.name}`;
      try {
        await virsh.run(h, ['domcapabilities', '--virttype', 'kvm'], { timeoutMs: ctx.timeoutMs, retries: 0 });
        out.push(ok('kvm.libvirt', target, 'libvirt offers KVM domains on this host'));
      } catch (e) {
        const msg = (e as Error).message;
        if (/unreachable|connect|timed? ?out/i.test(msg) && !/kvm/i.test(msg)) out.push(skipped('kvm.libvirt', target, `host not reachable to ask: ${msg}`));
        else out.push(warn('kvm.libvirt', target, `libvirt offers no KVM on this host (${msg}); desktops run as TCG domains. ${TCG_COST}`, 'Check `virsh domcapabilities --virttype kvm` on the host: load kvm_intel/kvm_amd, enable VT-x/AMD-V, or enable nested virtualisation if the host is a VM.'));
      }
    }));
  }
  if (!out.length) out.push(skipped('kvm.qemu', 'broker', 'no QEMU or libvirt provider configured'));
  return out;
};
