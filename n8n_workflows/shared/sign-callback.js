// Signed callbacks to the service, per Standard Webhooks with the workflow's own key from the
// trigger body (as app/webhooks/signing.py verifies them); needs the sha256-hmac block.
//   signed(type, data) -> { url, body, id, timestamp, signature } for the next HTTP node to send
//     byte for byte (the same item a Set node and a Crypto node make on the hot path);
//     webhook-id <workflowId>:<executionId>:<taskKey|workflow>:<type>:<attempt>:<runIndex>
//     (sha256-shortened past 200 characters): stable across retries, unique per event.
//   failure(item) -> { message, code } of a failed agent call (error output or success: false).
//   ran(name) -> the first output item of a node that ran in this execution, else undefined.
//   done(taskKey) -> that task's output when it was done before n8n lost the execution this one
//     replaced (the trigger's resume.done; null for a task skipped or without output), else undefined.
const trigger = $('Rexera trigger').first().json.body;
function ran(name) {
  try {
    const node = $(name);
    return node.isExecuted ? node.first().json : undefined;
  } catch (error) {
    return undefined;
  }
}
function done(taskKey) {
  return ((trigger.resume || {}).done || {})[taskKey];
}
function signed(type, data) {
  const full = Object.assign({ workflowId: trigger.workflowId, executionId: String($execution.id), attempt: 1 }, data);
  const body = JSON.stringify({ type, timestamp: new Date().toISOString(), data: full });
  let id = [trigger.workflowId, $execution.id, full.taskKey || 'workflow', type, full.attempt, $runIndex].join(':');
  if (id.length > 200) id = trigger.workflowId + ':' + Buffer.from(sha256(Buffer.from(id, 'utf8'))).toString('hex');
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = Buffer.from(hmacSha256(Buffer.from(trigger.signingKey, 'base64'),
    Buffer.from(id + '.' + timestamp + '.' + body, 'utf8'))).toString('base64');
  return { url: trigger.callbackUrl, body, id, timestamp: String(timestamp), signature };
}
function failure(item) {
  let details = item.error_details || {};
  const error = item.error;
  const http = error && typeof error === 'object' && /^(\d{3}) - ([\s\S]*)$/.exec(String(error.message || ''));
  if (http) {
    try {
      let answer = JSON.parse(http[2]);
      if (typeof answer === 'string') answer = JSON.parse(answer);
      if (answer && answer.error_details) details = answer.error_details;
    } catch (ignored) {}
    if (details.error_message) details = Object.assign({}, details, { error_message: 'HTTP ' + http[1] + ': ' + details.error_message });
  }
  const message = details.error_message
    || (error && typeof error === 'object' ? (error.description || error.message) : error)
    || 'the agent failed without a message';
  return { message: String(message).slice(0, 1000), code: details.error_code || (error && error.httpCode) || null };
}
