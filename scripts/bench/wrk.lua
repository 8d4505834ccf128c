-- wrk script of scripts/bench-vs-nginx.sh: every request goes to the next request target of a
-- file (path + query, one a line), round-robin, so each upload writes a new key; the threads
-- split the file (thread i takes lines i, i + T, i + 2T, ...), so no two threads share a key.
--
-- Environment (wrk passes no options to scripts):
--   BENCH_TARGETS  file of request targets (required)
--   BENCH_THREADS  wrk's -t (how the file is split)
--   BENCH_METHOD   PUT (default), GET or POST
--   BENCH_BODY     file sent as the body of every request (none: no body)
--   BENCH_CTYPE    Content-Type header (none: not sent)
--   BENCH_AUTH     Authorization header value (none: not sent)
--   BENCH_STATUS   "1": count responses by status and keep the first non-2xx body (costs a
--                  copy of each response body, so off for the GET row)
--   BENCH_OUT      where done() writes its JSON summary
--
-- A target reused because the file ran out counts as a wrap (reported: an overwrite, not a
-- new key).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local targets, idx, head_tail, body

function init(_)
  local n = tonumber(os.getenv("BENCH_THREADS") or "1")
  targets = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_TARGETS")) do
    if i % n == id then
      targets[#targets + 1] = line
    end
    i = i + 1
  end
  if #targets == 0 then
    error("no request targets for thread " .. id)
  end
  idx = 0
  wraps = 0
  statuses = {}
  body = ""
  local path = os.getenv("BENCH_BODY")
  if path and path ~= "" then
    local f = assert(io.open(path, "rb"))
    body = f:read("*a")
    f:close()
  end
  local h = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n"
  local ctype = os.getenv("BENCH_CTYPE")
  if ctype and ctype ~= "" then
    h = h .. "Content-Type: " .. ctype .. "\r\n"
  end
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then
    h = h .. "Authorization: " .. auth .. "\r\n"
  end
  if #body > 0 then
    h = h .. "Content-Length: " .. #body .. "\r\n"
  end
  head_tail = h .. "\r\n"
  method = (os.getenv("BENCH_METHOD") or "PUT") .. " "
end

function request()
  idx = idx + 1
  if idx > #targets then
    idx = 1
    wraps = wraps + 1
  end
  -- One concatenation: the body is copied once here and once by wrk.
  return method .. targets[idx] .. head_tail .. body
end

if os.getenv("BENCH_STATUS") == "1" then
  function response(status, _, resp_body)
    statuses[status] = (statuses[status] or 0) + 1
    if (status < 200 or status > 299) and not sample then
      sample = string.sub(resp_body or "", 1, 400)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, "[%c\"\\]", function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, _)
  local wraps_total, by_status, first_sample = 0, {}, nil
  for _, t in ipairs(threads) do
    wraps_total = wraps_total + (t:get("wraps") or 0)
    local st = t:get("statuses") or {}
    for code, count in pairs(st) do
      by_status[code] = (by_status[code] or 0) + count
    end
    first_sample = first_sample or t:get("sample")
  end
  local parts = {}
  for code, count in pairs(by_status) do
    parts[#parts + 1] = string.format('"%d": %d', code, count)
  end
  local e = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p99": %d, "max": %d}, '
      .. '"wraps": %d, "statuses": {%s}, "status_counted": %s, "sample": %s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max,
    wraps_total, table.concat(parts, ", "),
    tostring(os.getenv("BENCH_STATUS") == "1"),
    first_sample and json_string(first_sample) or "null"
  )
  local f = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  f:write(out)
  f:close()
end
