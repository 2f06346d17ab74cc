// Deployment and workload types shared by the node, the client and the CLI: schemas, validation, challenge
// hash, signatures. Nothing here touches runc, FUSE or the network.
export * from './capacity.js'
export * from './challenge.js'
export * from './def.js'
export * from './deployment.js'
export * from './registry.js'
export * from './signature.js'
export * from './workload.js'
export { ZmachineSchema, rootSize, ROOT_DEFAULT, ROOT_MIN, MIN_MEMORY, type ZmachineData, type ZmachineResult } from './zmachine.js'
export { ZmountSchema, type ZmountData, type ZmountResult } from './zmount.js'
export { VolumeSchema, type VolumeData, type VolumeResult } from './volume.js'
export { canonicalJson } from './qsfs.js'
