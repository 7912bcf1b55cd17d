//! Compiling and running the C programs of `tests/c/` against the librtc of
//! `target/release` (built by `cargo build --release`, which the README's
//! test command runs first): the helpers of `tests/tests/c_programs.rs`, for
//! the suites that drive C programs next to other languages.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

/// How a program is linked to librtc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Against `librtc.so`, found through an rpath.
    Shared,
    /// Against `librtc.a`.
    Static,
}

/// The sanitizer options every program runs with: leaks are errors.
pub const ASAN_OPTIONS: &str = "detect_leaks=1:abort_on_error=0:halt_on_error=1";

/// Returns the repository's root.
pub fn root() -> PathBuf {
    crate::tests_dir().parent().expect("tests/ has a parent").to_path_buf()
}

/// Returns the folder holding librtc and the `rtc` command: the release
/// folder the running test binary was built in. Panics, saying how to build
/// them, when librtc is missing or older than `ffi/src` or `core/src`.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/release/deps/NAME-HASH -> target/release
        let dir =
            exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps").to_path_buf();
        for lib in ["librtc.so", "librtc.a"] {
            let path = dir.join(lib);
            let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
                panic!(
                    "{} is missing: build librtc first with `cargo build --release --locked` \
                     (the README's test command, tests/run.sh, does)",
                    path.display()
                )
            });
            assert!(
                built >= newest_source(),
                "{} is older than ffi/src or core/src: rebuild it with `cargo build --release --locked`",
                path.display()
            );
        }
        soname_link(&dir);
        dir
    })
}

/// Links `librtc.so.ABI` (librtc.so's SONAME, which programs linked with
/// `-lrtc` record) to `librtc.so` in the build folder, as `ffi/install.sh`
/// does in a prefix, so programs linked against the build folder run.
fn soname_link(dir: &Path) {
    let out = Command::new("readelf").arg("-d").arg(dir.join("librtc.so")).output().expect("run readelf -d");
    let text = String::from_utf8_lossy(&out.stdout);
    let soname = text
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|l| l.split(']').next())
        .unwrap_or_else(|| panic!("{}/librtc.so has no SONAME", dir.display()));
    let link = dir.join(soname);
    let _ = std::fs::remove_file(&link);
    // Another test process may have made it at the same moment: either link will do.
    if let Err(e) = std::os::unix::fs::symlink("librtc.so", &link) {
        assert!(link.exists(), "cannot link {}: {e}", link.display());
    }
}

/// The newest modification time of librtc's own sources.
fn newest_source() -> SystemTime {
    // librtc holds core too: a change in either folder makes it stale.
    fn newest(dir: &Path) -> Option<SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let meta = e.metadata().ok()?;
                if meta.is_dir() { newest(&e.path()) } else { meta.modified().ok() }
            })
            .max()
    }
    [root().join("ffi/src"), root().join("core/src")]
        .iter()
        .filter_map(|d| newest(d))
        .chain(std::fs::metadata(root().join("ffi/Cargo.toml")).and_then(|m| m.modified()))
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Returns the folder compiled programs go to (`target/release/c-tests`).
pub fn out_dir() -> PathBuf {
    let dir = lib_dir().join("c-tests");
    std::fs::create_dir_all(&dir).expect("create target/release/c-tests");
    dir
}

/// Runs `cmd` to completion; panics with its output unless it exits 0.
pub fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- command\n{cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Compiles `tests/c/<source>` with warnings as errors and AddressSanitizer,
/// linked to librtc as `link` says; returns the program.
pub fn compile(source: &str, link: Link) -> PathBuf {
    compile_file(&root().join("tests/c").join(source), link)
}

/// Compiles the C or C++ file at `path` as [`compile`] does (with
/// `tests/c` on the include path); the program is named after its stem.
pub fn compile_file(path: &Path, link: Link) -> PathBuf {
    compile_file_with(path, link, Options::default())
}

/// What [`compile_with`] adds to [`compile`]'s command.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Flags after the usual ones: a later `-std=` wins over the default
    /// one, so `-std=c++20` picks the standard, and any warning flag added
    /// is an error too.
    pub flags: &'a [&'a str],
    /// Libraries linked after librtc (`-luv`, say).
    pub libs: &'a [&'a str],
    /// A name put between the source's stem and the link in the program's
    /// name, so the variants of one source (one per standard, say) built
    /// side by side by parallel tests never overwrite each other.
    pub variant: Option<&'a str>,
}

/// Compiles `tests/c/<source>` as [`compile`] does, with what `options`
/// adds.
pub fn compile_with(source: &str, link: Link, options: Options<'_>) -> PathBuf {
    compile_file_with(&root().join("tests/c").join(source), link, options)
}

/// The one compiler command every `compile*` function runs.
fn compile_file_with(path: &Path, link: Link, options: Options<'_>) -> PathBuf {
    let cxx = path.extension().is_some_and(|e| e == "cpp");
    let stem = path.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 file name");
    let name = match options.variant {
        // A variant's name goes into a file name: anything but letters and
        // digits (the `+` of `c++20`, say) becomes `_`.
        Some(variant) => {
            let variant: String = variant.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            format!("{stem}-{variant}-{link:?}")
        }
        None => format!("{stem}-{link:?}"),
    };
    let program = out_dir().join(name.to_lowercase());
    let mut cmd = Command::new(if cxx { "g++" } else { "cc" });
    cmd.arg(if cxx { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        // AddressSanitizer and UndefinedBehaviorSanitizer, the latter fatal.
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"])
        .args(options.flags)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .arg(path)
        .arg("-o")
        .arg(&program);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(lib_dir()).arg("-lrtc").arg(format!("-Wl,-rpath,{}", lib_dir().display()));
        }
        Link::Static => {
            cmd.arg(lib_dir().join("librtc.a")).args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    cmd.args(options.libs).arg("-lpthread");
    let what = if options.flags.is_empty() {
        format!("compiling {} ({link:?})", path.display())
    } else {
        format!("compiling {} ({link:?}, {:?})", path.display(), options.flags)
    };
    run_checked(&mut cmd, &what);
    program
}

/// Runs a compiled program under AddressSanitizer with leak checking; panics
/// with its output unless it exits 0 and reports no sanitizer error.
/// Returns its stdout.
pub fn run(program: &Path, args: &[&str]) -> String {
    let out =
        run_checked(Command::new(program).args(args).env("ASAN_OPTIONS", ASAN_OPTIONS), &program.display().to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Sanitizer"), "{}: sanitizer report:\n{stderr}", program.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A C program running under AddressSanitizer, with piped stdin, stdout
/// and stderr, for a test that talks to it while it runs.
pub struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    seen: String,
}

impl Running {
    /// Starts `program` with `args`.
    pub fn spawn(program: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(program)
            .args(args)
            .env("ASAN_OPTIONS", ASAN_OPTIONS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Running { child, stdout, seen: String::new() }
    }

    /// Reads one line of its stdout (without the newline); panics at end of file.
    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read a C program's stdout");
        self.seen.push_str(&line);
        assert!(n > 0, "the C program ended early; its output so far:\n{}", self.seen);
        line.trim_end_matches('\n').to_string()
    }

    /// Writes one line to its stdin.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to a C program's stdin");
    }

    /// Closes its stdin, waits for it, and checks it as [`run`] does;
    /// returns its whole stdout.
    pub fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        self.stdout.read_to_string(&mut self.seen).expect("read a C program's stdout");
        let out = self.child.wait_with_output().expect("wait for a C program");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "the C program failed ({}):\n--- stdout\n{}\n--- stderr\n{stderr}",
            out.status,
            self.seen
        );
        assert!(!stderr.contains("Sanitizer"), "sanitizer report:\n{stderr}");
        self.seen
    }
}
