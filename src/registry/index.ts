/** The registry on DynamoDB: the table, the client and its errors (docs/protocol.md, "Registry items"). */
export * from "./errors.ts";
export * from "./registry.ts";
export * from "./table.ts";
export * from "./types.ts";
