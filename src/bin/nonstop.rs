//! `nonstop`: the operator's command (status, rollback, deploy, validate, init, bundle).
use clap::{CommandFactory, Parser, Subcommand};
use nonstop::cli::{Common, Flags};
use nonstop::operator;
use std::path::PathBuf;
use std::time::Duration;

/// `--watch DURATION`: `60s`, `2m`; above zero.
fn watch_duration(s: &str) -> Result<Duration, String> {
    match nonstop::config::parse_duration(s)? {
        d if d.is_zero() => Err(format!("invalid duration {s:?}: must be above zero")),
        d => Ok(d),
    }
}

#[derive(Parser)]
#[command(
    name = "nonstop",
    version = nonstop::VERSION,
    about = "Operate nonstop blue/green deploys: status, history, logs, rollback, switch, deploy, validate, init, bundle, setup",
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "Examples:\n  nonstop status                            # what runs where, health now, last deployments\n  nonstop status --json | jq '.slots[] | {name, state, release}'\n  nonstop logs -f                           # the live slot's app output, followed\n  nonstop rollback                          # back to the previous slot\n  nonstop switch --slot blue                # make blue live (the repair nonstop names)\n  nonstop deploy --jar build/libs/app.jar   # stop, start, health, switch in one run\n  nonstop deploy --watch 60s                # then watch the new release, switch back on 5xx/p99\n  nonstop switch --canary 10,50,100 --watch 60s   # balanced: judged steps, abort on a breach\n  nonstop validate                          # config, nginx, appspec.yml, hook timeouts, java, jar\n  nonstop init .                            # deploy/, Jenkinsfiles, GitHub workflows\n  nonstop bundle --jar target/app.jar -o app.zip   # the CodeDeploy bundle, checked first\n  sudo nonstop setup --user ec2-user -c deploy/nonstop.yml   # once per app per host: units, sudo rules\n\nExit codes: 0 done, 1 failed (the last stderr line says why), 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// What runs where: per slot state, pid, uptime, release, health now; last deployments
    ///
    /// Per slot: port, profile, state (live/standby/stopped), rotation (balanced mode), pid,
    /// uptime, release (jar and its sha256) and one health probe with its latency; then the
    /// last deployments from the state history. Reads only and takes no lock.
    Status {
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// The recorded deployments, newest first, with the app's version and who ran each
    ///
    /// One line per deployment from the state history: its id (the CodeDeploy deployment id,
    /// or deploy-/rollback-TIME), when it started, how long it took, the slot, the app's
    /// version (the jar's Implementation-Version, else its file name), the release folder, the
    /// outcome (ok, or the stage that failed and why) and who ran it (CodeDeploy with its
    /// deployment group, ssh with the client's address, or a user). Reads only, no lock.
    History {
        /// Show only the newest N
        #[arg(short = 'n', long, value_name = "N")]
        last: Option<usize>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Back to the previous slot and release
    ///
    /// If the previous slot still runs the release it served and answers health, switch back
    /// at once (same probe and nginx transaction as `switch`); otherwise start that release on
    /// it again, wait for health, switch. --slot NAME rolls back to another slot.
    Rollback {
        /// One JSON object on stdout (changed, outcome, slot, release, version, stage
        /// timings); the stage lines go to stderr with the log
        #[arg(long)]
        json: bool,
    },
    /// The app's output: the journal (systemd) or the slot's log file (builtin)
    ///
    /// The last N lines of a slot's app (the live slot unless SLOT or --slot is given), then,
    /// with -f, new lines as they come until interrupted. Under systemd this is
    /// `journalctl -u nonstop-APP@SLOT.service`; under the builtin supervisor it reads
    /// workdir/logs/SLOT.log (following it across a rotation or a copytruncate).
    Logs {
        /// The slot [default: the live one]
        #[arg(value_name = "SLOT")]
        name: Option<String>,
        /// Lines to show first
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
    },
    /// Make a slot live: the switch hook by hand (probe, one transaction, record)
    ///
    /// `nonstop switch --slot NAME` proves NAME's app holds its port, probes it once, and moves
    /// traffic there in one transaction (nginx: write, test, reload; nftables: the table), even
    /// when the include or table already names it: the repair nonstop names when it cannot
    /// tell which slot serves. Without --slot: the idle slot. The same as `bin/switch`.
    Switch {
        /// Switch without the health probe or the proof of who answers
        #[arg(long)]
        force: bool,
        /// Balanced mode: keep the old slots in rotation, send about PERCENT of requests to the
        /// new one; steps (e.g. 10,50,100) with --watch: each step is judged against the old
        /// slots over the same window, 100 promotes, a breach aborts
        #[arg(long, value_name = "PERCENT[,PERCENT…]", value_parser = nonstop::watch::canary::parse_steps, conflicts_with_all = ["promote", "abort"])]
        canary: Option<nonstop::watch::canary::Steps>,
        /// Complete a canary: equal weights, the canary slot becomes live
        #[arg(long, conflicts_with = "abort")]
        promote: bool,
        /// Undo a canary: the canary slot leaves rotation
        #[arg(long)]
        abort: bool,
        /// Watch the new release in nginx's access log for DURATION (e.g. 60s) and switch
        /// back to the old slot if its 5xx share or p99 breaks the `watch:` limits (with
        /// --canary: each step for DURATION, aborted on a breach)
        #[arg(long, value_name = "DURATION", value_parser = watch_duration, conflicts_with_all = ["promote", "abort"])]
        watch: Option<Duration>,
    },
    /// stop, start, health, switch in one run
    ///
    /// The same stage functions the hook binaries run, holding the lock throughout, with one
    /// summary line per stage (and deploy-second in balanced mode). A jar that is live already
    /// (the same sha256, its app healthy) changes nothing: the run says so and exits 0.
    Deploy {
        /// Deploy this jar instead of the newest match of app.jar
        #[arg(long, value_name = "PATH")]
        jar: Option<PathBuf>,
        /// After the switch, watch the new release in nginx's access log for DURATION (e.g.
        /// 60s) and switch back to the old slot if its 5xx share or p99 breaks the `watch:`
        /// limits (exit 1) [default: watch.duration when watch.enabled]
        #[arg(long, value_name = "DURATION", value_parser = watch_duration)]
        watch: Option<Duration>,
        /// One JSON object on stdout (changed, outcome, slot, release, version, stage
        /// timings); the stage lines go to stderr with the log
        #[arg(long)]
        json: bool,
    },
    /// Check config, nginx, appspec.yml, hook timeouts, java and the jar
    ///
    /// One line per check; exit 1 if any fails. nginx is checked with `nginx -T` (the test
    /// command with -t turned into -T): it must load the include file and proxy_pass the
    /// variable. appspec.yml must be one the CodeDeploy agent accepts, and each hook's timeout
    /// must cover what its binary may wait (stop.drain, stop.grace, health.deadline) plus a
    /// margin of 10 % (at least 10 s). The config: --config, $NONSTOP_CONFIG,
    /// deploy/nonstop.yml (what `nonstop init` writes) or nonstop.yml in this folder,
    /// nonstop.yml above this binary (a bundle), /etc/nonstop/nonstop.yml. On a machine that is
    /// evidently not the host (no nginx master at nginx.pid_file, no include file, no
    /// state_dir: the build machine), the host checks (nginx, write access, supervisor, java)
    /// are skipped with that reason, as `nonstop bundle` skips them.
    Validate {
        /// appspec.yml to check [default: next to the config, as in a bundle]
        #[arg(long, value_name = "PATH")]
        appspec: Option<PathBuf>,
    },
    /// Write starting deploy files, Jenkinsfiles, GitHub workflows and Ansible playbooks
    ///
    /// Writes deploy/nonstop.yml, deploy/appspec.yml, deploy/nginx/{service-url.inc,site.conf,
    /// upstream.conf}, Jenkinsfile and .github/workflows/nonstop-deploy.yml
    /// (CodeDeploy: nonstop bundle, S3, create-deployment), Jenkinsfile.ssh and
    /// .github/workflows/nonstop-deploy-ssh.yml (scp the jar, ssh HOST nonstop deploy --jar),
    /// Jenkinsfile.ansible and ansible/{setup,deploy,rollback,status}.yml, ansible/inventory.ini
    /// (several hosts, one at a time) under DIR. Refuses to overwrite existing files unless
    /// --force.
    Init {
        /// The project's root folder
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Overwrite existing files
        #[arg(long)]
        force: bool,
        /// App name (app.name, nginx upstream, CodeDeploy application)
        #[arg(long, default_value = "myapp")]
        name: String,
        /// The include file nonstop owns
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/etc/nginx/conf.d/service-url.inc"
        )]
        include: PathBuf,
        /// nginx listen of the site (port or address:port)
        #[arg(long, value_name = "ADDR", default_value = "80")]
        listen: String,
        /// How traffic is steered: nftables (nginx proxies to a front port of the app's own and
        /// is never reloaded: nothing lost at a switch), or nginx-reload (the include; a reload
        /// can cut responses under load)
        #[arg(long, value_name = "VIA", default_value = "nftables", value_parser = ["nftables", "nginx-reload"])]
        traffic: String,
        /// The global --config and --slot, which init has no use for: shadowed here (an arg
        /// of the subcommand's own with the same id is not propagated), so its help does not
        /// list them and giving one is a usage error.
        #[arg(
            id = "config",
            long = "config",
            short = 'c',
            hide = true,
            value_name = "PATH"
        )]
        no_config: Option<PathBuf>,
        #[arg(id = "slot", long = "slot", hide = true, value_name = "NAME")]
        no_slot: Option<String>,
    },
    /// Build the CodeDeploy bundle zip: appspec.yml, nonstop.yml, bin/*, app/JAR
    ///
    /// The binaries are the ones beside this nonstop (an unpacked release tarball's bin/). The
    /// bundle's config, appspec.yml, hook timeouts and jar are checked first with the same
    /// checks as `nonstop validate`; a failing one refuses the bundle and writes nothing. The
    /// checks that need the host (nginx, write access, supervisor, java) are left to
    /// `bin/nonstop validate` there. The zip is reproducible: same inputs, same bytes.
    /// The config is found as `nonstop validate` finds it (--config, $NONSTOP_CONFIG,
    /// deploy/nonstop.yml, nonstop.yml, ...).
    Bundle {
        /// The app's jar (the Spring Boot jar, not *-plain.jar or *.jar.original)
        #[arg(long, value_name = "PATH")]
        jar: PathBuf,
        /// appspec.yml for the bundle [default: appspec.yml next to the config]
        #[arg(long, value_name = "PATH")]
        appspec: Option<PathBuf>,
        /// The zip to write (atomically)
        #[arg(short, long, value_name = "FILE.zip", default_value = operator::bundle::DEFAULT_OUTPUT)]
        output: PathBuf,
    },
    /// The one step that needs root: units, sudo rules and the host registry for one app
    ///
    /// Run once per app per host as root (`sudo nonstop setup --user ec2-user --config PATH`),
    /// and again to change what it fixed; prints what it changed, or that nothing did. Installs
    /// a root-owned copy of nonstop (/usr/local/libexec/nonstop/APP/nonstop), the registry entry
    /// /etc/nonstop/apps/APP.json (slots, ports, users, folders; a clash with another app is
    /// refused naming it), the template unit nonstop-APP@.service, the work and state folders
    /// owned by USER, and for a USER other than root /etc/sudoers.d/nonstop-APP: one exact
    /// command per line (start, stop, enable, disable, reset-failed of the app's slot units; in
    /// reload mode the nginx test and reload), checked with visudo. A later nonstop.yml naming
    /// other ports, slots, users or folders is refused until setup runs again.
    Setup {
        /// The user the hooks run as (ec2-user, ubuntu; root when no other user deploys)
        #[arg(long, value_name = "USER")]
        user: String,
    },
    /// Root's half of nftables steering for a set-up app (one exact sudo line each): apply the
    /// steering the hook user asked for in state_dir/steer.want, checked against the registry
    #[command(hide = true)]
    Steer {
        #[arg(long)]
        app: String,
        /// Print the table instead (nothing when it is not loaded)
        #[arg(long)]
        show: bool,
        /// At boot (the app's traffic unit): nothing to do when nothing was asked yet
        #[arg(long)]
        boot: bool,
        /// The steering unit's watch: load the table again whenever it disappears (a ruleset
        /// flush), until stopped
        #[arg(long, conflicts_with_all = ["show", "boot"])]
        watch: bool,
    },
    /// The slot units' ExecStart (as the app user): check the slot's launch file, exec java
    #[command(hide = true)]
    RunSlot {
        #[arg(long)]
        app: String,
    },
    /// Shell completion script on stdout (`make completions` writes them all)
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Man page on stdout, or nonstop.1 and one page per subcommand into DIR
    #[command(hide = true)]
    Man { dir: Option<PathBuf> },
}

impl Flags for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
    fn quiet(&self) -> bool {
        !matches!(
            self.cmd,
            Cmd::Rollback { .. } | Cmd::Deploy { .. } | Cmd::Switch { .. }
        )
    }
}

fn main() -> std::process::ExitCode {
    nonstop::cli::run("nonstop", |c: &Cli| {
        // The run of a command that works on the app: built once here, passed down.
        let run = || nonstop::run::Run::load(c.common.config.as_deref());
        let slot = c.common.slot.as_deref();
        match &c.cmd {
            Cmd::Status { json } => operator::status::run(&run()?, slot, *json),
            Cmd::History { last, json } => operator::history::run(&run()?, *last, *json),
            Cmd::Rollback { json } => operator::report::run(*json, "rollback", |rep, _| {
                operator::rollback::run(&run()?, slot, rep)
            }),
            Cmd::Logs {
                name,
                lines,
                follow,
            } => operator::logs::run(&run()?, name.as_deref().or(slot), *lines, *follow),
            Cmd::Switch {
                force,
                canary,
                promote,
                abort,
                watch,
            } => {
                let run = run()?;
                if let Some(steps) = canary {
                    return nonstop::watch::canary::switch(&run, slot, *force, steps, *watch);
                }
                if !promote && !abort {
                    if let Some(d) = nonstop::watch::duration(&run.cfg, *watch)? {
                        return nonstop::watch::switch(&run, slot, *force, d);
                    }
                }
                let mode = match (promote, abort) {
                    (true, _) => nonstop::stages::SwitchMode::Promote,
                    (_, true) => nonstop::stages::SwitchMode::Abort,
                    _ => nonstop::stages::SwitchMode::Full,
                };
                nonstop::stages::switch(&run, slot.into(), *force, mode)
            }
            Cmd::Deploy { jar, watch, json } => {
                operator::report::run(*json, "deploy", |rep, decided| {
                    operator::deploy::run(&run()?, slot, jar.as_deref(), *watch, rep, decided)
                })
            }
            Cmd::Validate { appspec } => {
                operator::validate::run(c.common.config.as_deref(), appspec.as_deref())
            }
            Cmd::Init {
                dir,
                force,
                name,
                include,
                listen,
                traffic,
                no_config,
                no_slot,
            } => {
                if let Some(flag) = no_config
                    .as_ref()
                    .map(|_| "--config")
                    .or(no_slot.as_ref().map(|_| "--slot"))
                {
                    return Err(nonstop::Error::Usage(format!(
                        "init takes no {flag}: it writes the starting files under DIR (see `nonstop init --help`)"
                    )));
                }
                operator::init::run(&operator::init::Options {
                    dir: dir.clone(),
                    force: *force,
                    name: name.clone(),
                    include: include.clone(),
                    listen: listen.clone(),
                    traffic: if traffic == "nftables" {
                        nonstop::traffic::Via::Nftables
                    } else {
                        nonstop::traffic::Via::NginxReload
                    },
                })
            }
            Cmd::Bundle {
                jar,
                appspec,
                output,
            } => operator::bundle::run(&operator::bundle::Options {
                jar: jar.clone(),
                config: c.common.config.clone(),
                appspec: appspec.clone(),
                output: Some(output.clone()),
            }),
            Cmd::Setup { user } => nonstop::setup::run(&nonstop::setup::Options {
                user: user.clone(),
                config: c.common.config.clone(),
                seed: Some(nonstop::traffic::nft::seed_want),
            }),
            Cmd::Steer {
                app, watch: true, ..
            } => nonstop::traffic::watcher::watch(app),
            Cmd::Steer { app, show, .. } => nonstop::traffic::nft::steer(app, *show),
            Cmd::RunSlot { app } => nonstop::supervisor::systemd::run_slot(
                app,
                slot.ok_or_else(|| nonstop::Error::Usage("run-slot needs --slot".into()))?,
            ),
            Cmd::Completions { shell } => operator::completions(Cli::command(), *shell),
            Cmd::Man { dir } => operator::man(Cli::command(), dir.as_deref()),
        }
    })
}
