/**
 * The store conformance suite (test/helpers/store-conformance.ts) against NATS JetStream:
 * what src/stores/store.ts promises, with the real broker, stores built as the node builds them,
 * then real nodes on the store. Each store has a file of its own so that the stores run side by side.
 */
import { defineStoreConformance } from '../helpers/store-conformance.js';

defineStoreConformance('jetstream');
