#!/usr/bin/env node
// Makes a checkout ready to run: Debian packages (when root), npm packages, and a fresh build.
// Each step checks first, so a second run on a ready machine costs well under a second.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, lstatSync, readdirSync, statSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const quiet = process.argv.includes('--quiet')
const log = (msg) => { if (!quiet) process.stderr.write(`setup: ${msg}\n`) }

// Debian packages the tests and benchmarks use: runc (containers from flists), squashfs-tools and zstd
// (benchmark anchors), busybox-static (a tiny root filesystem to run), debootstrap (a Debian rootfs corpus),
// fuse3 (fusermount for cleanup of stale mounts), util-linux/mount, iproute2 (network namespaces), attr (xattrs),
// fio (FUSE benchmark), python3 (socket files on unpack, a FUSE test), e2fsprogs (node volumes and roots).
export const DEBIAN_PACKAGES = ['runc', 'squashfs-tools', 'zstd', 'busybox-static', 'debootstrap', 'fuse3', 'iproute2', 'util-linux', 'mount', 'attr', 'fio', 'python3', 'e2fsprogs']

// One dpkg-query for all of them (a process per package cost a quarter of a second on every `./zos`). It names
// each package it knows; an unknown one is only reported on stderr, so what is not listed as installed is missing.
function missingDebianPackages() {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...DEBIAN_PACKAGES], { encoding: 'utf8' })
  const installed = new Set((r.stdout ?? '').split('\n').filter((l) => l.endsWith(' install ok installed')).map((l) => l.split(' ')[0]))
  return DEBIAN_PACKAGES.filter((pkg) => !installed.has(pkg))
}

function ensureDebian() {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    log('not root (or not Debian): skipping Debian packages; tests that need them will say so')
    return
  }
  const missing = missingDebianPackages()
  if (missing.length === 0) return
  log(`installing Debian packages: ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env })
}

function mtime(p) { try { return statSync(p).mtimeMs } catch { return 0 } }

function ensureNpm() {
  const lock = join(root, 'package-lock.json')
  const installed = join(root, 'node_modules', '.package-lock.json')
  if (mtime(installed) >= mtime(lock) && mtime(installed) >= mtime(join(root, 'package.json'))) return
  log('installing npm packages')
  // `npm install`, not `npm ci`: npm 11 leaves the other platforms' optional anvil binaries out of the lock file
  // and then refuses `npm ci`; install still takes every version the lock file pins.
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit' })
  // npm may rewrite the lock file after node_modules: mark the install as the newer of the two.
  const now = new Date()
  utimesSync(installed, now, now)
}

// Benchmark corpora under bench/.work are not sources, and a symlink counts by its own time: a Debian root there
// holds etc/mtab -> /proc/self/mounts, whose time is always now, and following it rebuilt on every run.
function newestSource(dir) {
  let newest = 0
  if (!existsSync(dir)) return 0
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name)
    if (ent.isDirectory()) {
      if (ent.name !== '.work') newest = Math.max(newest, newestSource(p))
    } else {
      newest = Math.max(newest, lstatSync(p).mtimeMs)
    }
  }
  return newest
}

function ensureBuild() {
  const stamp = join(root, 'dist', '.build-stamp')
  const sources = Math.max(
    ...['src', 'test', 'bench', 'contracts'].map((d) => newestSource(join(root, d))),
    mtime(join(root, 'tsconfig.json')), mtime(join(root, 'package-lock.json')))
  if (mtime(stamp) >= sources) return
  log('building (tsc)')
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' })
  if (r.status !== 0) { process.stderr.write('setup: the TypeScript build failed (see above)\n'); process.exit(1) }
  mkdirSync(dirname(stamp), { recursive: true })
  writeFileSync(stamp, new Date().toISOString() + '\n')
}

ensureDebian()
ensureNpm()
ensureBuild()
// For ./zos: everything is in place for this user as of now (it skips this script until a source changes).
writeFileSync(join(root, 'dist', `.setup-stamp-${process.getuid?.() ?? 'any'}`), new Date().toISOString() + '\n')
