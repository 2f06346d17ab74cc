// The FUSE driver's public surface: mount an inode-based async filesystem on /dev/fuse (see docs/fuse.md).
export { mountFuse, startMount, unmountOnSignals, prepareMountpoint, abortConnection, listMounts, mountAt } from './mount.js'
export type { MountOptions, FuseMount, MountInfo, PendingMount } from './mount.js'
export type { InitInfo, SessionEnd, SessionEndReason } from './session.js'
export { FuseError, toErrno, errnoName } from './errno.js'
export { FUSE_ROOT_ID, S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFCHR, S_IFBLK, S_IFSOCK } from './protocol.js'
export type {
  FuseOps, Attr, AttrReply, Entry, OpenReply, DirEntry, DirEntryPlus, DirAdder, Statfs, RequestContext, FuseLogger,
} from './types.js'
