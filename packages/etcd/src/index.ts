export { type EtcdMember, type EtcdMemberOptions, type EtcdTls, etcdArgs, LOADED_MACHINE_TIMING, startEtcd } from "./daemon.ts";
