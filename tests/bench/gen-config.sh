#!/usr/bin/env bash
# Writes the plugin's stdin for a benchmark ADD: the example profile
# (conf/examples/design-example.json) with the CNI envelope and a prevResult,
# and optionally its "proxy-only" allowlist replaced by N generated entries.
#
#   gen-config.sh OUT [--entries N] [--shape exact|mixed|packed] [--target ADDR:PORT] [--log FILE]
#     (no --entries)   the example profile as it is (2 allow entries)
#     --entries N      N generated entries of --shape:
#       exact (default) IPv4 /32 tcp 443, one distinct address each: N set
#                      elements, all in the hash set allow4
#       mixed          in turn: IPv4 /32 tcp 443; IPv4 /30 udp 8000-8100; IPv6
#                      /128 tcp 443 + 8000-8100; IPv6 /64 udp 53. Addresses are
#                      spaced so no two entries merge: one set element per entry
#                      and port range (1.5 N), in hash sets (allow4, allow6,
#                      allow6_64) and interval sets (allow4_ranges, allow6_ranges)
#       packed         20 single ports each (20 N set elements)
#     --target A:P     also allow tcp and udp to A port P (the datapath server)
#     --log FILE       the plugin's logFile (default: none)
# Addresses come from 100.64.0.0/10 and fd00::/16; nothing is ever sent to them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
example="$here/../../conf/examples/design-example.json"
out="$1"; shift
entries="" shape=exact target="" log=""
while (($#)); do
  case "$1" in
    --entries) entries="$2"; shift 2 ;;
    --shape) shape="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    *) echo "gen-config.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

case "$shape" in exact | mixed | packed) ;; *) echo "gen-config.sh: unknown shape $shape" >&2; exit 2 ;; esac

jq -c --arg entries "$entries" --arg shape "$shape" --arg target "$target" --arg log "$log" '
  def v4(i): (i * 8) as $a
    | "100.\(64 + (($a / 65536) | floor)).\((($a / 256) | floor) % 256).\($a % 256)";
  def generated(n):
    [range(0; n) | . as $i
      | if $shape == "exact" then {cidr: "\(v4($i))/32", protocol: "tcp", ports: [443]}
        elif $shape == "packed" then
          if $i % 2 == 0 then {cidr: "\(v4($i))/32", protocol: "tcp", ports: [range(1; 40; 2)]}
          else {cidr: "fd00:\(1000 + (($i / 10000) | floor)):\($i % 10000)::1/128", protocol: "udp",
                ports: [range(1; 40; 2)]} end
        elif $i % 4 == 0 then {cidr: "\(v4($i))/32", protocol: "tcp", ports: [443]}
        elif $i % 4 == 1 then {cidr: "\(v4($i))/30", protocol: "udp", ports: ["8000-8100"]}
        elif $i % 4 == 2 then {cidr: "fd00:\(2000 + (($i / 10000) | floor)):\($i % 10000)::1/128",
                               protocol: "tcp", ports: [443, "8000-8100"]}
        else {cidr: "fd00:\(3000 + (($i / 10000) | floor)):\($i % 10000)::/64", protocol: "udp", ports: [53]}
        end];
  def target_entries:
    if $target == "" then []
    else ($target | split(":")) as $t
      | [{cidr: "\($t[0])/32", protocol: "tcp", ports: [($t[1] | tonumber)]},
         {cidr: "\($t[0])/32", protocol: "udp", ports: [($t[1] | tonumber)]}] end;
  (if $entries == "" then . else .profiles["proxy-only"].allow = generated($entries | tonumber) end)
  | .profiles["proxy-only"].allow += target_entries
  | (if $log == "" then del(.logFile) else .logFile = $log end)
  | {cniVersion: "1.0.0", name: "ef-bench"} + .
  + {prevResult: {cniVersion: "1.0.0",
                  interfaces: [{name: "eth0", sandbox: "/var/run/netns/pod"}],
                  ips: [{address: "10.99.0.2/24", interface: 0}]}}
' "$example" >"$out"
