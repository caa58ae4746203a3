//! CPU time of a process from `/proc/PID/stat` (user + system, all threads).

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on every Linux architecture
/// Peregrine runs on).
pub fn ticks_per_second() -> f64 {
    100.0
}

/// User plus system clock ticks of process `pid` (this process if `None`), or `None` if it is
/// gone or unreadable.
pub fn process_ticks(pid: Option<u32>) -> Option<u64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat(&text)
}

/// utime + stime from the text of a `stat` file. The command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "4242 (kea dhcp4 (x)) S 1 2 3 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(325));
        assert!(process_ticks(None).is_some());
    }
}
