-- wrk script: POST /messages with a message no request has sent before, so every request
-- is a real write (a repeat would be a read of an existing key).
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Unique per wrk process (its pid and start time), so the warm-up run and every round send
-- different messages.
local function process_tag()
  local stat = io.open("/proc/self/stat")
  local pid = stat and stat:read("*n") or math.random(1e9)
  if stat then stat:close() end
  return string.format("%d-%d", os.time(), pid)
end

function init()
  run = process_tag()
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format('{"message":"bench %s thread %d message %d"}', run, id, counter)
  return wrk.format("POST", "/messages", nil, body)
end
