export { RawNode } from './rawnode.js';
export type { RaftConfig, Status, BasicStatus, ProgressStatus, CampaignType } from './raft.js';
export { seededRandom, type RandomSource } from './random.js';
export { RaftLog } from './log.js';
export * from './types.js';
export { InvalidMessageError, MaxRestoredTerm, MaxTerm, MaxTermStepAboveMaxTerm, validatePeerMessage, type InvalidMessageReason } from './validate.js';
export { confStateAfter } from './confchange.js';
