export { ManualProvider, type ManualProviderOptions, type MachineProbe } from './manual.provider.ts';
export { MachineService, type MachineView, type ImportResult } from './machine.service.ts';
export { machineSpecSchema, machineUpdateSchema, machineName, type MachineSpec, type MachineUpdate } from './machine.schema.ts';
export { parseMachinesCsv, CSV_COLUMNS } from './csv.ts';
export { probeConsole, X224_CONNECTION_REQUEST } from './probe.ts';
