// Names of the kernel objects vipmesh owns, in one place: how the drivers find them again.

/** Names of vipmesh-owned kernel objects. Short enough for IFNAMSIZ (15). */
export const names = {
  bridge: (vni: number) => `vmbr${vni}`,
  vxlan: (vni: number) => `vmvx${vni}`,
  /** Host end of a sandbox's veth: stable per (task, interface index). */
  hostVeth: (taskId: string, index: number) => `vmv${taskId.slice(0, 10)}${index}`,
  /** Host end of a task sandbox's gateway link (host-mode ports). */
  gatewayVeth: (taskId: string) => `vmg${taskId.slice(0, 12)}`,
  /** A task's namespace; the prefix tells whose it is (an agent's, a lab's), so leftovers can be found. */
  sandbox: (prefix: string, taskId: string) => `${prefix}${taskId}`,
};
