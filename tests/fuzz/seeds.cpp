// Writes the generated seeds: encode_batch output of every base ruleset of
// targets.h (fuzz_netlink); the inputs fuzz_netlink_batch reads as "that
// batch, unedited" or "that batch with a few attribute bytes changed"; and
// conf dirs for fuzz_conflist made of the primaries corpus: each primary
// alone, all of them with the distractors, and each after an owned and a
// chained install.
// Usage: ef_fuzz_seeds CORPUS_DIR TESTS_CORPUS_DIR   (tests/fuzz/corpus tests/corpus)
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "targets.h"

namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

// The input format of ef::fuzz::conflist: "=== NAME" lines before each file.
std::string conf_dir_text(const std::vector<ef::install::ConfFile>& files) {
    std::string text;
    for (const auto& f : files) text += "=== " + f.name + "\n" + f.content;
    return text;
}

std::vector<ef::install::ConfFile> files_in(const fs::path& dir) {
    std::vector<ef::install::ConfFile> files;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) files.push_back({e.path().filename().string(), read(e.path())});
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return files;
}

void write_conflist_seeds(const fs::path& out, const fs::path& tests_corpus) {
    using namespace ef::install;
    auto primaries = files_in(tests_corpus / "primaries");
    auto distractors = files_in(tests_corpus / "distractors");
    const Json& entry = ef::fuzz::fixed_entry();
    for (const auto& p : primaries) {
        write_text(out / ("one-" + p.name), conf_dir_text({p}));
        std::string why_not;
        auto net = load_network(p, why_not);
        if (!net) continue;
        write_text(out / ("owned-" + p.name), conf_dir_text({{std::string(kOwnedFile), render_owned(*net, entry)}, p}));
        if (!net->from_single_conf)
            write_text(out / ("chained-" + p.name), conf_dir_text({{p.name, render_chained(p, entry)}}));
    }
    auto all = primaries;
    all.insert(all.end(), distractors.begin(), distractors.end());
    write_text(out / "conf-dir-all", conf_dir_text(all));
}

void write(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: ef_fuzz_seeds CORPUS_DIR TESTS_CORPUS_DIR\n";
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    const auto& batches = ef::fuzz::base_batches();
    for (size_t i = 0; i < batches.size(); ++i) {
        const auto& bytes = batches[i].bytes;
        const std::string n = std::to_string(i);
        write(dir / "fuzz_netlink" / ("batch-" + n + ".bin"), bytes);
        write(dir / "fuzz_netlink_batch" / ("unedited-" + n + ".bin"), {uint8_t(i), 0});
        // Framing kept, one byte past the first message changed: reaches the
        // attribute readers at once.
        uint16_t off = uint16_t(std::min<size_t>(bytes.size() - 1, 40 + 64 * i));
        write(dir / "fuzz_netlink_batch" / ("edited-" + n + ".bin"),
              {uint8_t(i), 1, uint8_t(off), uint8_t(off >> 8), 0xff});
    }
    write_conflist_seeds(dir / "fuzz_conflist", argv[2]);
    std::cout << "ef_fuzz_seeds: seeds written under " << dir.string() << "\n";
    return 0;
}
