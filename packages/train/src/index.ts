export * from './backbone.js';
export * from './early-stopping.js';
export * from './features.js';
export * from './head.js';
export * from './metrics.js';
export * from './preprocess.js';
export * from './mixes.js';
export * from './reduce-lr.js';
