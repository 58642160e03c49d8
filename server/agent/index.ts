// The guest agent channel (docs/agent.md): the rest of the broker uses only what is exported here.
export { AgentHub, type Agents, type AgentDesktop, type AgentKind, type AgentStatus, type GuestEvent, type HomeMount, type ImageAgent, type AgentsOptions } from './agents.ts';
export { agentSecret, helloProof, MAX_LINE_BYTES, PROTOCOL_VERSION, type DropReason } from './protocol.ts';
export { VdiChannel, type HelloInfo } from './channel.ts';
export { QgaChannel } from './qga.ts';
export { createAgents } from './create.ts';
