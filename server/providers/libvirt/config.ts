import type { Logger } from 'pino';
import type { ImageFiles } from '../qemu/config.ts';

// Configuration shapes of the libvirt driver.

export interface LibvirtHostConfig {
  /** Host name pools, drains and the helpdesk see. */
  name: string;
  /** libvirt connection URI: qemu+ssh://user@host/system, qemu+tls://host/system, qemu:///system. */
  uri: string;
  /** Address the host's VNC consoles listen on (reached by the broker and guacd). */
  consoleAddress: string;
  /** Storage pool holding image bases and desktop volumes (shared for live migration). */
  storagePool: string;
  /** Private key file for qemu+ssh URIs (added to the URI as keyfile=; ssh runs in batch mode, never prompting). */
  sshKey?: string;
  /** qemu+ssh: known_hosts file the host's key is checked against (only this file); default: the broker account's known_hosts. */
  sshKnownHosts?: string;
  /** qemu+ssh: false turns host key checking off (no_verify=1) — an explicit opt-out, for labs only. */
  sshVerifyHostKey?: boolean;
  /** Folder with the TLS client certificate, key and CA (cacert.pem, clientcert.pem, clientkey.pem) for qemu+tls URIs. */
  tlsDir?: string;
  /** Factors on the host's physical CPUs and memory (1 = no overcommit). */
  overcommit?: { cpu?: number; memory?: number };
  /** A host in maintenance takes no new desktops. */
  maintenance?: boolean;
  /** auto: kvm when the host's capabilities offer it, else qemu (TCG). */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Network of the desktops' NIC: a libvirt network name, or "user" for QEMU user networking. */
  network?: string;
  /** The pool is shared storage (NFS, Ceph RBD, iSCSI) that every host of this provider sees: live migration moves only memory. */
  sharedStorage?: boolean;
  /** URI the other hosts' daemons reach this one with for peer-to-peer migration (default: uri). */
  migrationUri?: string;
  /** Address (host or host:port) migration data is sent to on this host; default: libvirt's choice. */
  migrationAddress?: string;
  /** Folder on the host where each desktop's serial console gets a unix socket (<id>.serial); none when empty. */
  serialSocketDir?: string;
  /**
   * Folder (0700, root) on the host for each desktop's guest agent socket (<id>.agent); default:
   * libvirt's own per-domain channel folder. qemu+tcp/tls hosts: only when the broker sees this
   * folder at the same path (use qemu+ssh for remote hosts).
   */
  agentSocketDir?: string;
}

export interface LibvirtProviderOptions {
  name: string;
  hosts: LibvirtHostConfig[];
  /** Files of an image version ("name:version") on the broker's machine. */
  images: (ref: string) => Promise<ImageFiles>;
  placement?: 'breadth' | 'depth';
  logger: Logger;
  stopTimeoutMs?: number;
  startTimeoutMs?: number;
  /** Timeout of one virsh call (migration and uploads have their own). */
  callTimeoutMs?: number;
  /** Live-migration timeout. */
  migrateTimeoutMs?: number;
  /** How start() asks a console for its RFB banner (default: a TCP connection from this machine). */
  consoleBanner?: (host: LibvirtHostConfig, address: string, port: number) => Promise<string>;
  /** The virsh binary (default: from PATH). */
  virsh?: string;
}
