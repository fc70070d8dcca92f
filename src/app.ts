/** The composition root: builds a node's core, then registers its endpoints and routes. */
export { createNode, FanoutNode, type NodeOptions } from './node/node.js';
