export { type EtcdMember, type EtcdMemberOptions, type EtcdTls, etcdArgs, LOADED_MACHINE_TIMING, startEtcd } from "./daemon.ts";
export { connectEtcd, type EtcdClientTls, type EtcdConnectOptions, readEtcdTls } from "./client.ts";
export type { Etcd3, ICompare, IEvent, IKeyValue, IRequestOp, IWatchResponse } from "etcd3";
