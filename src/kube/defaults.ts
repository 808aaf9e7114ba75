// The defaults of the traffic manager's install, apart from the code that installs it, so that
// the CLI's flags can name them without loading the Kubernetes client library.

/** The image with node that the manager and the agents run (the bundles come in ConfigMaps). */
export const DEFAULT_IMAGE = 'docker.io/library/node:22-bookworm-slim';
/** The namespace of the traffic manager. */
export const DEFAULT_MANAGER_NAMESPACE = 'telepod';
