-- wrk script for benches/apiserver: POSTs the requests listed in
-- $BENCH_REQUESTS/schedule (one "PATH FILE" a line, written by bench.py) to
-- kube-apiserver in turn, with the bearer token in $BENCH_TOKEN, over wrk's
-- keep-alive connections; prints one machine-readable RESULT line at the end.
-- wrk does not verify the API server's certificate (a throw-away CA).

local dir = os.getenv("BENCH_REQUESTS") or error("BENCH_REQUESTS is not set")
local token = os.getenv("BENCH_TOKEN") or error("BENCH_TOKEN is not set")
local requests = {}
local next_request = 0
local threads = 0

function setup(thread)
   thread:set("thread_index", threads)
   threads = threads + 1
end

function init(args)
   for line in io.lines(dir .. "/schedule") do
      local path, name = line:match("^(%S+)%s+(%S+)$")
      local f = assert(io.open(dir .. "/" .. name, "rb"))
      local body = f:read("*a")
      f:close()
      local headers = {
         ["Content-Type"] = "application/json",
         ["Accept"] = "application/json",
         ["Authorization"] = "Bearer " .. token,
         ["User-Agent"] = "benches-apiserver-wrk",
      }
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
   end
   -- Threads start at different points of the cycle.
   next_request = (thread_index or 0) * 7 % #requests
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
