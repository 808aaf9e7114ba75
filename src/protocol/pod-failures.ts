// Container waiting reasons that mean a pod will not become ready without a change: the
// manager watches for them in an intercept's rollout, the daemon in the manager's own pod.

export const FAILING_WAIT_REASONS: ReadonlySet<string> = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);
