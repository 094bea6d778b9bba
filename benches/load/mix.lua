-- wrk script for benches/load.sh: POSTs the AdmissionReview bodies listed in
-- $LOAD_REVIEWS/schedule (written by gen_reviews.py) to /validate in turn,
-- over wrk's keep-alive connections, and prints one machine-readable RESULT
-- line at the end (wrk's --latency table has no p99.9).

local dir = os.getenv("LOAD_REVIEWS") or error("LOAD_REVIEWS is not set")
local requests = {}
local next_request = 0
local threads = 0

function setup(thread)
   -- Runs in wrk's main Lua state, once per thread before it starts.
   thread:set("thread_index", threads)
   threads = threads + 1
end

function init(args)
   -- Each wrk thread has its own Lua state: build the requests once per
   -- thread, then hand them out round-robin.
   for name in io.lines(dir .. "/schedule") do
      local f = assert(io.open(dir .. "/" .. name, "rb"))
      local body = f:read("*a")
      f:close()
      local headers = { ["Content-Type"] = "application/json" }
      requests[#requests + 1] = wrk.format("POST", "/validate", headers, body)
   end
   -- Start the threads at different points of the cycle.
   next_request = (thread_index or 0) * 7 % #requests
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p75_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
