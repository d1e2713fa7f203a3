// The GitHub Action post step (cache save); filled by the CI adapters issue.
import * as core from '@actions/core';

core.info('kiln post: nothing to do');
