-- oip.lua: wrk script for tests/bench/bench_oip.sh (Open Inference Protocol, REST).
--   wrk ... -s oip.lua URL -- N_SEQUENCES BODIES_FILE MODEL
-- Each request POSTs one one-step sparse spike batch to /v2/models/MODEL/infer as Triton's
-- HTTP client would: no Content-Type, the JSON header with the events as a binary FP32
-- [k, 3] tensor after it (Inference-Header-Content-Length), binary outputs asked for, in
-- the sequence sequence_id (1..N_SEQUENCES round-robin, each wrk thread starting at a
-- different offset), sequence_start and sequence_end false. BODIES_FILE lines:
-- "HEADER<TAB>HEX-TAIL", HEADER with {SEQ} where the sequence id goes.
local bodies = {}
local nseq, model, path = 1, "fmnist", "/v2/models/fmnist/infer"
local n = 0
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local function unhex(h)
  return (h:gsub("..", function(b) return string.char(tonumber(b, 16)) end))
end

function init(args)
  nseq = tonumber(args[1])
  model = args[3]
  for line in io.lines(args[2]) do
    local head, tail = line:match("^(.-)\t(%x*)$")
    if head then
      local pre, post = head:match("^(.-){SEQ}(.*)$")
      bodies[#bodies + 1] = { pre, post, unhex(tail) }
    end
  end
  assert(nseq > 0 and #bodies > 0, "oip.lua: no sequences or empty bodies file")
  path = "/v2/models/" .. model .. "/infer"
  n = (tid or 0) * 7919
end

function request()
  n = n + 1
  local b = bodies[(n % #bodies) + 1]
  local head = b[1] .. ((n % nseq) + 1) .. b[2]
  local headers = { ["Inference-Header-Content-Length"] = tostring(#head) }
  return wrk.format("POST", path, headers, head .. b[3])
end
