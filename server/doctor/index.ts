// The doctor (docs/doctor.md): one command that checks, per host and desktop, the faults VDI
// helpdesks meet most, and says what is wrong and how to fix it. The API route, the CLI and the
// broker (clock publishing) use only what is exported here.
export { runDoctor, formatReport, FAMILIES } from './run.ts';
export { ClockPublisher, CLOCK, measureRedisOffset, type ReplicaClock } from './clock.ts';
export { probePort, type PortProbe, type PortState } from './probe.ts';
export { explainKvm, kvmFacts } from './kvm.ts';
export { doctorContext } from './context.ts';
export type { CheckResult, CheckStatus, DoctorContext, DoctorReport, GuestClocks } from './types.ts';
