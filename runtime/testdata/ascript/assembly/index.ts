// A waPC actor written against @wapc/as-guest as its README shows, with
// nothing teastick-specific: echo, SHA-256 through the host's crypto
// capability, a call to a capability the test does not grant, and an
// error result.
import { register, handleCall, hostCall, handleAbort, Result } from "@wapc/as-guest";

register("echo", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.ok<ArrayBuffer>(payload);
});

register("hash", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return hostCall("", "crypto", "sha256", payload);
});

register("kv", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return hostCall("", "kv", "get", payload);
});

register("fail", function (payload: ArrayBuffer): Result<ArrayBuffer> {
  return Result.error<ArrayBuffer>(new Error("failed as asked"));
});

// This must be present in the entry file.
export function __guest_call(operation_size: usize, payload_size: usize): bool {
  return handleCall(operation_size, payload_size);
}

function abort(message: string | null, fileName: string | null, lineNumber: u32, columnNumber: u32): void {
  handleAbort(message, fileName, lineNumber, columnNumber);
}
