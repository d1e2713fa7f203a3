/**
 * The process that starts every RUN: a small Perl program, because the step it must take cannot be
 * split across host tools. In the namespaced rungs it is PID 1 of the run: it pivot_roots into the
 * prepared root and unmounts the old root *in its own, already loaded, process*, so no host binary is
 * ever loaded from (or through) a root the image controls, and no chroot trick leads back to the host.
 * In the plain rung it chroots a child instead. Then, in a child, it bounds the capabilities (Docker's
 * default set unless RUN --security=insecure), clears the inheritable and ambient sets, sets groups,
 * gid and uid, the exact environment and the working directory, closes its private descriptor and
 * execs the command. The parent reaps; when the command ends it names every process that is still
 * there on fd 3 (`kiln lingering: <pid> <comm> <cmdline>`), kills them and waits for them: as PID 1 of
 * the pid namespace, or as a child subreaper in the plain rung, it is the parent of every orphan.
 *
 * Only Perl built-ins are used (no module is loaded after the root changes); syscall numbers come
 * from the arguments (syscallNumbers() below). Perl is part of every Debian/Ubuntu base (perl-base is
 * Essential) and of the runner image. Hand-written because no host tool does pivot_root + umount +
 * capability bounding + exec in one process, and a second host binary exec'd after the pivot would
 * be loaded through the image's dynamic loader.
 */

export const RUN_INIT_SCRIPT = String.raw`
my ($mode, $root, $cwd, $uid, $gid, $groups, $keepGroups, $caps, $lastCap, $nrPivot, $nrUmount2,
    $nrPrctl, $nrCapget, $nrCapset, $nrSetgroups, $filter, $nenv) = splice(@ARGV, 0, 17);
my @env = splice(@ARGV, 0, $nenv);
my @cmd = @ARGV;
open(my $W, '>&=', 3) or open($W, '>&', \*STDERR);
select((select($W), $| = 1)[0]);
sub fail { print $W "kiln sandbox: $_[0]\n"; exit 125 }
if ($mode eq 'pivot') {
  opendir(my $old, '/') or fail("cannot open /: $!");
  chdir($root) or fail("cannot enter $root: $!");
  my ($new, $put) = ('.', '.');
  syscall($nrPivot, $new, $put) == 0 or fail("pivot_root: $!");
  chdir($old) or fail("cannot reach the old root: $!");
  my $here = '.';
  syscall($nrUmount2, $here, 2) == 0 or fail("cannot unmount the old root: $!");
  closedir($old);
  chdir('/') or fail("chdir /: $!");
}
syscall($nrPrctl, 36, 1, 0, 0, 0);
my $aborted = 0;
# proot: the first tracee reports the command's status on this pipe (kept across exec: $^F).
my ($SR, $SW);
if ($mode eq 'proot') { $^F = 255; pipe($SR, $SW) or fail("pipe: $!"); $^F = 2; }
my $pid = fork();
defined $pid or fail("fork: $!");
if ($pid == 0) {
  if ($mode eq 'chroot') {
    chroot($root) or fail("chroot $root: $!");
    chdir('/') or fail("chdir /: $!");
  }
  if ($caps ne 'all') {
    my %keep = map { ($_ => 1) } split(/,/, $caps);
    for my $c (0 .. $lastCap) {
      next if $keep{$c};
      syscall($nrPrctl, 24, $c + 0, 0, 0, 0) == 0 or fail("cannot drop capability $c: $!");
    }
  }
  syscall($nrPrctl, 47, 4, 0, 0, 0);
  my $hdr = pack('LL', 0x20080522, 0);
  my $data = "\0" x 24;
  syscall($nrCapget, $hdr, $data) == 0 or fail("capget: $!");
  my @d = unpack('L6', $data);
  ($d[2], $d[5]) = (0, 0);
  $data = pack('L6', @d);
  syscall($nrCapset, $hdr, $data) == 0 or fail("cannot clear the inheritable capabilities: $!");
  if ($keepGroups ne '1') {
    my @g = grep { length } split(/,/, $groups);
    my $list = pack('L*', @g);
    syscall($nrSetgroups, scalar(@g), $list) == 0 or fail("setgroups: $!");
  }
  $( = $gid; $) = $gid;
  ($( == $gid && $) == $gid) or fail("cannot set gid $gid: $!");
  ($<, $>) = ($uid, $uid);
  ($< == $uid && $> == $uid) or fail("cannot set uid $uid: $!");
  %ENV = ();
  for my $e (@env) { my $i = index($e, '='); $ENV{substr($e, 0, $i)} = substr($e, $i + 1); }
  chdir($cwd) or fail("cannot change to the working directory $cwd: $!");
  if ($mode eq 'proot') {
    close($SR);
    setpgrp(0, 0);
    my $sfd = fileno($SW);
    @cmd = map { $_ eq '@kiln-status-fd@' ? $sfd : $_ } @cmd;
    my $prog = '';
    for my $i (0 .. length(pack('H*', $filter)) / 8 - 1) {
      my ($c, $t, $f, $k) = unpack('S C C L', substr(pack('H*', $filter), $i * 8, 8));
      $k = $$ if $k == 0x7e57ab1e;
      $k = 4294967296 - $$ if $k == 0x81a854e2;
      $prog .= pack('S C C L', $c, $t, $f, $k);
    }
    syscall($nrPrctl, 38, 1, 0, 0, 0) == 0 or fail("no_new_privs: $!");
    my $fprog = pack('S x6 Q', length($prog) / 8, unpack('Q', pack('p', $prog)));
    syscall($nrPrctl, 22, 2, $fprog, 0, 0) == 0 or fail("cannot install the seccomp filter: $!");
  }
  close($W);
  exec { $cmd[0] } @cmd;
  my $errno = $! + 0;
  print STDERR "kiln: cannot run $cmd[0]: $!\n";
  exit($errno == 2 ? 127 : 126);
}
sub descendants {
  my ($me) = @_;
  my %parent; my %name;
  opendir(my $p, '/proc') or return ();
  for my $n (grep { /^\d+$/ } readdir($p)) {
    open(my $f, '<', "/proc/$n/stat") or next;
    my $st = <$f>; close($f);
    next unless defined $st && $st =~ /^\d+ \((.*)\) \S+ (\d+)/s;
    $parent{$n} = $2; $name{$n} = $1;
  }
  closedir($p);
  my @out;
  for my $n (keys %parent) {
    my ($x, $hops) = ($n, 0);
    while (defined $parent{$x} && $parent{$x} != $me && $hops++ < 4096) { $x = $parent{$x}; }
    next unless defined $parent{$x} && $parent{$x} == $me;
    my $cmdline = '';
    if (open(my $c, '<', "/proc/$n/cmdline")) { local $/; $cmdline = <$c> // ''; close($c); }
    $cmdline =~ s/\0+$//; $cmdline =~ s/\0/ /g;
    push @out, [$n, $name{$n}, $cmdline];
  }
  return @out;
}
my $self = readlink('/proc/self');
$self = $$ unless defined $self && $self =~ /^\d+$/;
# The pids read from /proc are those of the /proc mounted: where a fresh proc cannot be mounted (a
# container's masked /proc) it is the container's, whose numbers mean other processes (or none) in
# the run's own pid namespace. As PID 1 of that namespace, kill(-1) reaches every process in it.
sub kill_all { if ($$ == 1) { kill 9, -1; } else { kill 9, map { $_->[0] } @_; } }
# PRoot's tracees would go on untraced if PRoot died first: they are killed until none is left, then it.
sub reap_all {
  my ($keep) = @_;
  for my $round (0 .. 200) {
    my @left = grep { $_->[0] != $keep } descendants($self);
    last unless @left;
    kill 9, map { $_->[0] } @left;
    while (waitpid(-1, 1) > 0) {}
    select(undef, undef, undef, 0.01);
  }
  kill 9, $keep;
}
my $status;
if ($mode eq 'proot') {
  close($SW);
  $SIG{TERM} = sub { $aborted = 1; reap_all($pid); };
  my $line = <$SR>;
  my $inner = 0;
  if (defined $line && $line =~ /^status (\d+) (\d+)/) { ($status, $inner) = ($1, $2); }
  else { $status = 9; }
  my @left = grep { $_->[0] != $pid && $_->[0] != $inner } descendants($self);
  if (@left && !$aborted) { print $W "kiln lingering: $_->[0] $_->[1] $_->[2]\n" for @left; }
  reap_all($pid);
  while (wait() != -1) {}
}
$SIG{TERM} = sub { $aborted = 1; kill_all(descendants($self)); };
while ($mode ne 'proot') {
  my $w = wait();
  last if $w == -1;
  if ($w == $pid) { $status = $?; last; }
}
$SIG{TERM} = 'IGNORE';
for my $round (0 .. 100) {
  last if $mode eq 'proot';
  my @left = descendants($self);
  last unless @left;
  if ($round == 0 && !$aborted) {
    print $W "kiln lingering: $_->[0] $_->[1] $_->[2]\n" for @left;
  }
  kill_all(@left);
  while (waitpid(-1, 1) > 0) {}
  select(undef, undef, undef, 0.02);
}
while (wait() != -1) {}
$status //= 0;
if ($status & 127) {
  my $sig = $status & 127;
  if ($mode ne 'pivot') { $SIG{TERM} = 'DEFAULT'; kill $sig, $$; }
  exit(128 + $sig);
}
exit($status >> 8);
`;

/** Linux syscall numbers the init needs, per architecture. */
export interface InitSyscalls {
  pivotRoot: number;
  umount2: number;
  prctl: number;
  capget: number;
  capset: number;
  setgroups: number;
  setsid: number;
}

const GENERIC: InitSyscalls = {
  pivotRoot: 41,
  umount2: 39,
  prctl: 167,
  capget: 90,
  capset: 91,
  setgroups: 159,
  setsid: 157,
};
const SYSCALLS: Partial<Record<string, InitSyscalls>> = {
  x64: { pivotRoot: 155, umount2: 166, prctl: 157, capget: 125, capset: 126, setgroups: 116, setsid: 112 },
  arm64: GENERIC,
  riscv64: GENERIC,
};

/** The numbers for `arch` (process.arch), or undefined where kiln does not know them. */
export function syscallNumbers(arch: string): InitSyscalls | undefined {
  return SYSCALLS[arch];
}

/**
 * The first process inside PRoot (plain rung, PRoot mode): the host's Perl, bound into the root at
 * /.kiln-run with its own loader and libraries, because PRoot itself cannot change ids. It leaves
 * PRoot's session, forks the command with the RUN's groups, ids, environment and working directory,
 * and reports its wait status (and its own pid) on the pipe the run init reads.
 */
export const PROOT_INNER_SCRIPT = String.raw`
my ($cwd, $uid, $gid, $groups, $keepGroups, $nrSetgroups, $nrSetsid, $nrPrctl, $nrCapget, $nrCapset,
    $tracerCaps, $fd, $nenv) = splice(@ARGV, 0, 13);
my @env = splice(@ARGV, 0, $nenv);
my @cmd = @ARGV;
open(my $S, '>&=', $fd) or die "kiln sandbox: status pipe: $!\n";
select((select($S), $| = 1)[0]);
syscall($nrSetsid);
# PRoot keeps one capability its tracees drop here: with a permitted set that is not a subset of
# theirs, no tracee may ptrace it or open its /proc/<pid>/mem (no_new_privs: no exec gives it back).
my $hdr = pack('LL', 0x20080522, 0);
my $data = "\0" x 24;
syscall($nrCapget, $hdr, $data) == 0 or die "kiln sandbox: capget: $!\n";
my @d = unpack('L6', $data);
for my $c (split(/,/, $tracerCaps)) {
  syscall($nrPrctl, 24, $c + 0, 0, 0, 0) == 0 or die "kiln sandbox: capability bound: $!\n";
  for my $i (0, 1, 2) { $d[$i] &= ~(1 << $c); }
}
syscall($nrCapset, $hdr, pack('L6', @d)) == 0 or die "kiln sandbox: capset: $!\n";
my $pid = fork();
defined $pid or die "kiln sandbox: fork: $!\n";
if ($pid == 0) {
  close($S);
  if ($keepGroups ne '1') {
    my @g = grep { length } split(/,/, $groups);
    syscall($nrSetgroups, scalar(@g), pack('L*', @g)) == 0 or die "kiln sandbox: setgroups: $!\n";
  }
  $( = $gid; $) = $gid;
  ($( == $gid && $) == $gid) or die "kiln sandbox: cannot set gid $gid: $!\n";
  ($<, $>) = ($uid, $uid);
  ($< == $uid && $> == $uid) or die "kiln sandbox: cannot set uid $uid: $!\n";
  syscall($nrPrctl, 4, 1, 0, 0, 0);
  %ENV = ();
  for my $e (@env) { my $i = index($e, '='); $ENV{substr($e, 0, $i)} = substr($e, $i + 1); }
  chdir($cwd) or die "kiln sandbox: cannot change to the working directory $cwd: $!\n";
  exec { $cmd[0] } @cmd;
  my $errno = $! + 0;
  print STDERR "kiln: cannot run $cmd[0]: $!\n";
  exit($errno == 2 ? 127 : 126);
}
waitpid($pid, 0);
print $S "status $? $$\n";
exit 0;
`;
