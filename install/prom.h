// The node's metric families (inspect/families.h) in prometheus-cpp's types,
// and as exposition text by prometheus-cpp's serializer: `metrics` prints it,
// the metrics server's exposer serves the same families.
#pragma once

#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "inspect/families.h"

namespace ef::ctl {

// Throws cni::Error(kInternal) for a metric or label name prometheus-cpp
// calls invalid (a bug of ours: every name is fixed in the code, every
// counter name is a label value).
std::vector<prometheus::MetricFamily> to_prometheus(const std::vector<inspect::Family>& families);

// The text exposition format (0.0.4).
std::string to_text(const std::vector<inspect::Family>& families);

}  // namespace ef::ctl
