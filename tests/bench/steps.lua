-- steps.lua: wrk script for tests/bench/bench_server.sh.
--   wrk ... -s steps.lua URL -- IDS_FILE BODIES_FILE [json|pb]
-- Each request POSTs one one-step sparse spike batch (a line of BODIES_FILE) to
-- /v1/sessions/{id}/steps, the ids taken round-robin from IDS_FILE (one per line), each
-- wrk thread starting at a different offset so that the load is spread over all sessions.
-- json (default): the lines are JSON bodies. pb: the lines are hex-encoded protobuf
-- SpikeBatch messages, sent as application/x-protobuf with Accept: application/x-protobuf.
local ids, bodies = {}, {}
local n = 0
local headers = { ["Content-Type"] = "application/json" }
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local function unhex(h)
  return (h:gsub("..", function(b) return string.char(tonumber(b, 16)) end))
end

function init(args)
  local pb = args[3] == "pb"
  if pb then
    headers = { ["Content-Type"] = "application/x-protobuf",
                ["Accept"] = "application/x-protobuf" }
  end
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  for line in io.lines(args[2]) do
    if #line > 0 then bodies[#bodies + 1] = pb and unhex(line) or line end
  end
  assert(#ids > 0 and #bodies > 0, "steps.lua: empty ids or bodies file")
  n = (tid or 0) * 7919
end

function request()
  n = n + 1
  local id = ids[(n % #ids) + 1]
  local body = bodies[(n % #bodies) + 1]
  return wrk.format("POST", "/v1/sessions/" .. id .. "/steps", headers, body)
end
