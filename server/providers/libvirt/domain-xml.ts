import type { DesktopSpec } from '../provider.ts';

// The domain XML the driver defines, and the metadata element (in the broker's own XML
// namespace) by which it recognises the domains it owns. The XML carries the console password:
// it is only ever written to a private temp file for `virsh define`, never logged.

export const VDI_NS = 'https://vdi-broker.org/xmlns/desktop/1';

/** What the driver keeps about a desktop inside its domain. */
export interface DesktopMeta {
  id: string;
  pool: string;
  name: string;
  image: string;
  clone: 'linked' | 'full';
  provider: string;
}

export interface BootFiles {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

export interface DomainInput {
  spec: DesktopSpec;
  meta: DesktopMeta;
  uuid: string;
  virtType: 'kvm' | 'qemu';
  storagePool: string;
  volume: string;
  boot: BootFiles;
  consoleAddress: string;
  password: string;
  /** libvirt network name, or "user" for QEMU user networking. */
  network: string;
  serialSocket?: string;
  /** The guest agent's devices (docs/agent.md): where libvirt binds our port's socket, and the fw_cfg secret file. */
  agent?: AgentDevices;
}

/** Port names the guest looks for (the name file of each virtio port in sysfs). */
export const AGENT_PORT = 'org.vdibroker.agent.0';
export const QGA_PORT = 'org.qemu.guest_agent.0';
/** fw_cfg entry the guest agent reads its per-desktop secret from. */
export const AGENT_SECRET_FWCFG = 'opt/vdi/agent-secret';

export interface AgentDevices {
  /** Unix socket of org.vdibroker.agent.0 on the host; libvirt's own per-domain channel path when absent. */
  socket?: string;
  /** Host file (0600) with the desktop's agent secret, handed to the guest through fw_cfg. */
  secretFile?: string;
}

export function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const a = (s: string | number): string => `"${xmlEscape(String(s))}"`;
const VIDEO: Record<string, string> = { vga: 'vga', virtio: 'virtio', qxl: 'qxl', cirrus: 'cirrus', none: 'none' };

export function metadataXml(m: DesktopMeta): string {
  return `<vdi:desktop xmlns:vdi=${a(VDI_NS)} id=${a(m.id)} pool=${a(m.pool)} name=${a(m.name)} image=${a(m.image)} clone=${a(m.clone)} provider=${a(m.provider)}/>`;
}

/** Parses `virsh metadata DOM --uri VDI_NS` output; undefined when it is not the broker's. */
export function parseMetadata(xml: string): DesktopMeta | undefined {
  const el = /<(?:\w+:)?desktop\b([^>]*)\/?>/.exec(xml);
  if (!el) return undefined;
  const attrs = new Map<string, string>();
  for (const m of (el[1] ?? '').matchAll(/([\w:-]+)\s*=\s*(["'])(.*?)\2/g)) attrs.set(m[1]!, unescape(m[3]!));
  const id = attrs.get('id');
  if (!id) return undefined;
  const clone = attrs.get('clone') === 'full' ? 'full' : 'linked';
  return { id, pool: attrs.get('pool') ?? '', name: attrs.get('name') ?? '', image: attrs.get('image') ?? '', clone, provider: attrs.get('provider') ?? '' };
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

export function domainXml(i: DomainInput): string {
  const { spec } = i;
  const r = spec.resources;
  const kernelBoot = !!i.boot.kernel;
  const cmdline = `${i.boot.cmdline ?? ''} vdi.name=${spec.name} vdi.id=${spec.id}`.trim();
  const os = kernelBoot
    ? [
      `<kernel>${xmlEscape(i.boot.kernel!)}</kernel>`,
      ...(i.boot.initrd ? [`<initrd>${xmlEscape(i.boot.initrd)}</initrd>`] : []),
      `<cmdline>${xmlEscape(cmdline)}</cmdline>`,
    ]
    : ["<boot dev='hd'/>"];
  // Kernel-booted images (the demo) have virtio drivers; disk-booting golden images (Windows)
  // get SATA and e1000e, which every guest OS has drivers for.
  const nic = i.network === 'user'
    ? "<interface type='user'>"
    : `<interface type='network'><source network=${a(i.network)}/>`;
  const lines = [
    `<domain type=${a(i.virtType)}>`,
    `<name>${xmlEscape(spec.name)}</name>`,
    `<uuid>${xmlEscape(i.uuid)}</uuid>`,
    `<metadata>${metadataXml(i.meta)}</metadata>`,
    `<memory unit='MiB'>${r.memoryMiB}</memory>`,
    `<vcpu>${r.vcpu}</vcpu>`,
    // The secret goes in as a file reference: a value here would show in every `virsh dumpxml`.
    ...(i.agent?.secretFile ? [`<sysinfo type='fwcfg'><entry name=${a(AGENT_SECRET_FWCFG)} file=${a(i.agent.secretFile)}/></sysinfo>`] : []),
    `<os><type arch='x86_64' machine='q35'>hvm</type>${os.join('')}</os>`,
    '<features><acpi/><apic/></features>',
    ...(i.virtType === 'kvm' ? ["<cpu mode='host-passthrough'/>"] : []),
    "<clock offset='utc'><timer name='rtc' tickpolicy='catchup'/></clock>",
    '<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>',
    '<devices>',
    `<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool=${a(i.storagePool)} volume=${a(i.volume)}/>`
      + `<target dev=${kernelBoot ? "'vda' bus='virtio'" : "'sda' bus='sata'"}/></disk>`,
    `${nic}<mac address=${a(spec.mac.toLowerCase())}/><model type=${kernelBoot ? "'virtio'" : "'e1000e'"}/></interface>`,
    `<graphics type='vnc' autoport='yes' listen=${a(i.consoleAddress)} passwd=${a(i.password)}><listen type='address' address=${a(i.consoleAddress)}/></graphics>`,
    `<video><model type=${a(VIDEO[r.graphics] ?? 'vga')}/></video>`,
    i.serialSocket
      ? `<serial type='unix'><source mode='bind' path=${a(i.serialSocket)}/><target port='0'/></serial>`
      : "<serial type='pty'><target port='0'/></serial>",
    ...(i.agent ? agentChannelsXml(i.agent) : []),
    "<memballoon model='none'/>",
    '</devices>',
    '</domain>',
  ];
  return lines.join('\n');
}

/**
 * Two virtio-serial ports: ours, and qemu-guest-agent's. libvirt itself connects to the
 * org.qemu.guest_agent.0 socket (QEMU's chardev takes one client), so the broker reaches qga
 * through libvirt (`virsh qemu-agent-command`) and that socket stays at libvirt's default path.
 */
function agentChannelsXml(ag: AgentDevices): string[] {
  const src = ag.socket ? `<source mode='bind' path=${a(ag.socket)}/>` : "<source mode='bind'/>";
  return [
    "<controller type='virtio-serial' index='0'/>",
    `<channel type='unix'>${src}<target type='virtio' name=${a(AGENT_PORT)}/></channel>`,
    `<channel type='unix'><source mode='bind'/><target type='virtio' name=${a(QGA_PORT)}/></channel>`,
  ];
}

/** The host socket of a virtio channel in (live) domain XML, by the port's name. */
export function channelSocket(xml: string, port: string): string | undefined {
  for (const m of xml.matchAll(/<channel\b[^>]*>([\s\S]*?)<\/channel>/g)) {
    const body = m[1]!;
    const name = /<target\b[^>]*\bname=(["'])(.*?)\1/.exec(body)?.[2];
    if (name === undefined || unescape(name) !== port) continue;
    const p = /<source\b[^>]*\bpath=(["'])(.*?)\1/.exec(body)?.[2];
    return p === undefined ? undefined : unescape(p);
  }
  return undefined;
}

/** The console password in domain XML (dumpxml --security-info), for a broker that restarted. */
export function graphicsPassword(xml: string): string | undefined {
  const g = /<graphics\b[^>]*type=(["'])vnc\1[^>]*>/.exec(xml)?.[0];
  const m = g && /passwd=(["'])(.*?)\1/.exec(g);
  return m ? unescape(m[2]!) : undefined;
}

/** Host and port of the VNC console from `virsh domdisplay` (vnc://addr:display). */
export function parseDisplay(out: string): { host: string; port: number } | undefined {
  const m = /^vnc:\/\/(?:[^@\s]*@)?(\[[^\]]+\]|[^:\s]*):(\d+)/m.exec(out.trim());
  if (!m) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: 5900 + Number(m[2]) };
}
