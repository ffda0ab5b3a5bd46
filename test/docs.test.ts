/**
 * The design lives in the repository: no tracked file points to the design notes that sat
 * outside it (a clone does not have them), and every relative link of docs/*.md and README.md
 * names a file of the repository that exists, and a heading of it when the link has a fragment.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Spelled in pieces so that this file does not match itself.
const OUTSIDE_REFERENCES = [['..', 'shared'].join('/'), ['DESIGN', 'md'].join('.')];

/** Files git tracks, plus new ones it would track (not ignored), that exist in the work tree. */
function repositoryFiles(root: string): string[] {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  if (listed.status !== 0) throw new Error(`git ls-files failed in ${root}: ${listed.stderr || listed.error?.message}`);
  return [...new Set(listed.stdout.split('\0').filter(Boolean))]
    .filter((file) => !file.split('/').includes('node_modules') && existsSync(path.join(root, file)) && statSync(path.join(root, file)).isFile())
    .sort();
}

/** `file:line: mentions <reference>` for every line of a repository file that points outside it. */
function outsideReferences(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(root, file), 'utf8');
    if (!OUTSIDE_REFERENCES.some((reference) => text.includes(reference))) continue;
    text.split('\n').forEach((line, index) => {
      for (const reference of OUTSIDE_REFERENCES) if (line.includes(reference)) problems.push(`${file}:${index + 1}: mentions ${reference}`);
    });
  }
  return problems;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces made hyphens. */
function anchorOf(heading: string): string {
  return heading
    .replace(/`/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** Markdown without fenced blocks, where a `#` line is no heading and `[x](y)` no link. */
function withoutFences(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const match of withoutFences(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) anchors.add(anchorOf(match[1]));
  return anchors;
}

/** Targets of inline links and images, and of reference definitions. */
function linkTargets(markdown: string): string[] {
  // Inside inline code `[x](y)` is text, not a link.
  const text = withoutFences(markdown).replace(/`[^`\n]*`/g, '');
  const inline = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]);
  const definitions = [...text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)].map((match) => match[1]);
  return [...inline, ...definitions];
}

/** `file: link → why` for every relative link of `files` (repository paths) that leads nowhere. */
function brokenLinks(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const source = path.join(root, file);
    for (const target of linkTargets(readFileSync(source, 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:…: not a file of ours
      const [rawPath, fragment] = target.split('#', 2);
      const linkPath = decodeURIComponent(rawPath.split('?')[0]);
      const resolved = linkPath === '' ? source : path.resolve(path.dirname(source), linkPath);
      const relative = path.relative(root, resolved);
      if (relative.startsWith('..') || path.isAbsolute(relative)) {
        problems.push(`${file}: ${target} → points outside the repository`);
      } else if (!existsSync(resolved)) {
        problems.push(`${file}: ${target} → ${relative} does not exist`);
      } else if (fragment && resolved.endsWith('.md') && !anchorsOf(readFileSync(resolved, 'utf8')).has(fragment.toLowerCase())) {
        problems.push(`${file}: ${target} → ${relative} has no heading #${fragment}`);
      }
    }
  }
  return problems;
}

/** README.md and every docs/*.md, as repository paths. */
function documentationFiles(root: string): string[] {
  const docs = existsSync(path.join(root, 'docs')) ? readdirSync(path.join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`) : [];
  return ['README.md', ...docs.sort()].filter((file) => existsSync(path.join(root, file)));
}

describe('the checks themselves', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'connecte-docs-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  };
  spawnSync('git', ['init', '-q'], { cwd: root });
  write('.gitignore', 'ignored.md\n');
  write('ignored.md', `see ${OUTSIDE_REFERENCES[1]}\n`);
  write('src/a.ts', `// the rule of ${OUTSIDE_REFERENCES[1]}\nexport const a = 1;\n`);
  write('src/b.ts', `// see ${OUTSIDE_REFERENCES[0]}/territory\n`);
  write('node_modules/x/index.js', `// ${OUTSIDE_REFERENCES[1]}\n`);
  write('src/clean.ts', 'export const b = 2;\n');
  write(
    'docs/guide.md',
    [
      '# Guide',
      '## When a token expires',
      'Fine: [other](other.md), [anchor](other.md#the-part), [here](#when-a-token-expires), [web](https://example.org/x.md), [dir](../src).',
      'Broken: [missing](nope.md), [outside](../../elsewhere/notes.md), [anchor](other.md#no-such-part), ![img](img/missing.png).',
      '[ref]: ./gone.md',
      '```md',
      '[in a fence](fenced-nope.md)',
      '```',
      'and `[in code](code-nope.md)`.',
    ].join('\n'),
  );
  write('docs/other.md', '# Other\n\n### The `part`\n');
  write('README.md', 'See [docs](docs/guide.md) and [gone](docs/gone.md).\n');

  it('finds every line that points outside, in tracked and new files, skipping ignored files and node_modules', () => {
    assert.deepEqual(outsideReferences(root, repositoryFiles(root)), [`src/a.ts:1: mentions ${OUTSIDE_REFERENCES[1]}`, `src/b.ts:1: mentions ${OUTSIDE_REFERENCES[0]}`]);
  });

  it('finds missing files, links out of the repository and missing headings; ignores URLs and code', () => {
    assert.deepEqual(brokenLinks(root, documentationFiles(root)), [
      'README.md: docs/gone.md → docs/gone.md does not exist',
      'docs/guide.md: nope.md → docs/nope.md does not exist',
      'docs/guide.md: ../../elsewhere/notes.md → points outside the repository',
      'docs/guide.md: other.md#no-such-part → docs/other.md has no heading #no-such-part',
      'docs/guide.md: img/missing.png → docs/img/missing.png does not exist',
      'docs/guide.md: ./gone.md → docs/gone.md does not exist',
    ]);
  });
});

describe('the repository', () => {
  it('has its design under docs/', () => {
    for (const page of ['architecture', 'event-bus', 'graphql-conventions', 'auth', 'devices', 'runtime', 'opendata']) {
      assert.ok(existsSync(path.join(ROOT, 'docs', `${page}.md`)), `docs/${page}.md exists`);
    }
  });

  it('has no file that points to design notes outside the repository', () => {
    assert.deepEqual(outsideReferences(ROOT, repositoryFiles(ROOT)), []);
  });

  it('has no relative link in README.md or docs/*.md that leads nowhere', () => {
    assert.deepEqual(brokenLinks(ROOT, documentationFiles(ROOT)), []);
  });
});
