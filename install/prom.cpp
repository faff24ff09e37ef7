#include "prom.h"

#include <sstream>

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include "cni/error.h"

namespace ef::ctl {

std::vector<prometheus::MetricFamily> to_prometheus(const std::vector<inspect::Family>& families) {
    std::vector<prometheus::MetricFamily> out;
    out.reserve(families.size());
    for (const auto& f : families) {
        if (!prometheus::CheckMetricName(f.name))
            throw cni::Error(cni::kInternal, "metric name \"" + f.name + "\" is not valid");
        prometheus::MetricFamily pf;
        pf.name = f.name;
        pf.help = f.help;
        pf.type = f.kind == inspect::MetricKind::counter ? prometheus::MetricType::Counter
                                                         : prometheus::MetricType::Gauge;
        pf.metric.reserve(f.samples.size());
        for (const auto& s : f.samples) {
            prometheus::ClientMetric m;
            for (const auto& [name, value] : s.labels) {
                if (!prometheus::CheckLabelName(name))
                    throw cni::Error(cni::kInternal, "label name \"" + name + "\" of " + f.name + " is not valid");
                m.label.push_back({name, value});
            }
            if (f.kind == inspect::MetricKind::counter) m.counter.value = s.value;
            else m.gauge.value = s.value;
            pf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(pf));
    }
    return out;
}

std::string to_text(const std::vector<inspect::Family>& families) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, to_prometheus(families));
    return out.str();
}

}  // namespace ef::ctl
