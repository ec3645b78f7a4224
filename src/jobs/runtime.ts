import type { WorkerLauncher } from "../launch/launcher.ts";
import type { StageDeps } from "../stage/deps.ts";
import type { ShardFeedEvent } from "../feed/shard-feed.ts";

/** Where jobs run: the clients and registry, how workers start, how shards reach a shard-feed. */
export interface JobRuntime {
  readonly deps: StageDeps;
  readonly launcher: WorkerLauncher;
  dispatchShard(event: ShardFeedEvent): Promise<void>;
  /** Called when a job starts and when it ends (the local runtime polls its event sources only in between). */
  acquire(): void;
  release(): Promise<void>;
}
