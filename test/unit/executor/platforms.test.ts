/** Which stages a build of several platforms builds once: the plans of every target compared. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planFromText } from '../../../src/plan/plan.ts';
import { sharedStages } from '../../../src/executor/platforms.ts';
import { runPlatforms, stagePlatform } from '../../../src/plan/stage-platform.ts';
import { formatPlatform, parsePlatform, parsePlatformList } from '../../../src/image/platform.ts';

const build = parsePlatform('linux/amd64');
const targets = ['linux/amd64', 'linux/arm64', 'linux/arm/v7'].map(parsePlatform);
const plans = (text: string) =>
  targets.map((t) => planFromText(text, 'Dockerfile', { targetPlatform: t, buildPlatform: build }));

test('a $BUILDPLATFORM stage is shared; one reading TARGETARCH, or without --platform, is not', () => {
  const ps = plans(`FROM --platform=$BUILDPLATFORM golang AS native
RUN go build -o /tool
FROM --platform=$BUILDPLATFORM golang AS cross
ARG TARGETARCH
RUN GOARCH=$TARGETARCH go build -o /app
FROM native AS more
RUN /tool gen
FROM debian AS plain
RUN true
FROM --platform=$BUILDPLATFORM debian AS after-target
COPY --from=plain /etc/hostname /x
FROM debian
COPY --from=native /tool /tool
COPY --from=cross /app /app
COPY --from=more /etc /more
COPY --from=after-target /x /x
`);
  assert.deepEqual([...sharedStages(ps)].sort(), [0, 2]);
  // A stage FROM a shared stage runs on its platform; the others on the target's.
  assert.equal(formatPlatform(stagePlatform(ps[1]!, 2, targets[1]!)), 'linux/amd64');
  assert.equal(formatPlatform(stagePlatform(ps[1]!, 3, targets[1]!)), 'linux/arm64');
});

test('one plan shares nothing; a stage whose ARG default follows the target is not shared', () => {
  const text = `ARG V=$TARGETARCH
FROM --platform=$BUILDPLATFORM alpine AS a
ARG V
RUN echo $V
FROM alpine
COPY --from=a / /
`;
  assert.equal(sharedStages(plans(text).slice(0, 1)).size, 0);
  assert.equal(sharedStages(plans(text)).size, 0);
});

test('the platforms that need RUN: COPY-only stages need none, $BUILDPLATFORM stages the host', () => {
  const ps = plans(`FROM --platform=$BUILDPLATFORM alpine AS tools
RUN make
FROM scratch
COPY --from=tools /out /
`);
  const needs = runPlatforms(ps.map((plan, i) => ({ plan, platform: targets[i]! })));
  assert.deepEqual(
    needs.map((n) => [formatPlatform(n.platform), n.at.line]),
    [['linux/amd64', 2]],
  );
});

test('--platform lists: commas and repeats, each checked, the same platform once', () => {
  assert.deepEqual(
    parsePlatformList(['linux/amd64,linux/arm64', 'linux/arm/v7', 'linux/amd64']).map(formatPlatform),
    ['linux/amd64', 'linux/arm64', 'linux/arm/v7'],
  );
  assert.throws(() => parsePlatformList(['linux/amd64,arm64']), /invalid platform "arm64"/);
});
