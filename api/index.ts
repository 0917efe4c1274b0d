export { createApiServer, leaderBody, HttpError, type ApiServer, type ApiServerDeps, type LeaderBody } from './server.js';
export { ElectorMetrics, type ElectorMetricsOptions, type LeadershipSource } from './metrics.js';
export { resolveApiOptions, DEFAULT_API_OPTIONS, ApiConfigError, type ApiOptions } from './options.js';
export { isLoopbackAddress } from './loopback.js';
export { LocalNetworks, DEFAULT_LOCAL_CIDRS, CidrError, type ClientClass } from './local-networks.js';
export { type AdmissionRoute } from './admission.js';
