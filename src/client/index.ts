// Client library: build, hash, sign and send deployments; read results and logs; cancel.
export { GridClient, type DeployOptions, type DeployResult, type Phase } from './client.js'
export { containerDeployment, parseEnv, parseVolumeSpec, type ContainerSpec, type VolumeSpec } from './build.js'
