// The broker-run Samba of a share (embedded default): see samba.service.ts and docs/shares.md.
export { ManagedSamba, type ManagedSambaOptions, type SmbCredential } from './samba.service.ts';
export { smbNegotiate } from './negotiate.ts';
export { smbUserName, renderSmbConf, MAX_SMB_NAME } from './smb-conf.ts';
