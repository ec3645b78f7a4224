/**
 * The job watch's claims, two counters on the job item (`watchRound` with its `watchToken`, and
 * `watchAttempt`). Each claim is a conditional update that only moves a counter forward, so two
 * deliveries of a watch message cannot both run a round, nor two tries of a round both restart
 * the member set. A claim that is refused answers false; a missing job item is an error.
 */
import { JobNotFoundError } from "./errors.ts";
import { checkCount, checkName, keys, type Item, type Items, type Update } from "./items.ts";

async function claim(items: Items, jobId: string, k: Item, u: Update): Promise<boolean> {
  const r = await items.update(k, u);
  if (r.ok) return true;
  if (!r.current) throw new JobNotFoundError(jobId);
  return false;
}

export async function claimWatchRound(items: Items, jobId: string, round: number, token: string): Promise<boolean> {
  const k = keys.job(jobId);
  const values: Item = { ":next": { N: String(checkCount("round", round) + 1) }, ":token": { S: checkName("token", token) } };
  if (round > 0) values[":round"] = { N: String(round) };
  return claim(items, jobId, k, {
    update: "SET #round = :next, #token = :token",
    // The same token again is granted again: a redelivery after a failed round, or an SDK retry.
    condition: `attribute_exists(sk) AND (${round === 0 ? "attribute_not_exists(#round)" : "#round = :round"} OR (#round = :next AND #token = :token))`,
    names: { "#round": "watchRound", "#token": "watchToken" },
    values,
  });
}

export async function claimWatchAttempt(items: Items, jobId: string, attempt: number): Promise<boolean> {
  return claim(items, jobId, keys.job(jobId), {
    update: "SET #attempt = :attempt",
    condition: "attribute_exists(sk) AND (attribute_not_exists(#attempt) OR #attempt < :attempt)",
    names: { "#attempt": "watchAttempt" },
    values: { ":attempt": { N: String(checkCount("attempt", attempt, 1)) } },
  });
}
