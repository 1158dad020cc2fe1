import assert from 'node:assert/strict';

export type SdkError = Error & { Code?: string; $metadata?: { httpStatusCode?: number } };

/** Resolves with the SDK error a request fails with; fails the test if the request succeeds. */
export async function failure(promise: Promise<unknown>): Promise<SdkError> {
  try {
    await promise;
  } catch (error) {
    return error as SdkError;
  }
  assert.fail('expected the request to fail');
}

/** The request fails with an error of this name. */
export async function rejects(promise: Promise<unknown>, name: string): Promise<void> {
  const error = await failure(promise);
  assert.equal(error.name, name, error.message);
}
