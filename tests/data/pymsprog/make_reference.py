"""Reference disability-course events computed with pymsprog 1.0.7 (the Python port of
msprog, Montobbio et al. 2024), for vigil's EDSS tests to compare against.

Run from this folder:  pip install pymsprog==1.0.7 && python3 make_reference.py
Settings: msprog's defaults for EDSS (confirmation over 84 days, tolerance -7/+730.5 days,
minimum change 1.5 from 0, 1.0 up to 5.0, 0.5 above 5.0; a baseline within 30 days after a
relapse moves on; a confirmation within 30 days after a relapse does not count). Fixed
baseline: the first confirmed worsening (`event='firstCDW'`, vigil's fixed definition).
Roving baseline: every event (`event='multiple'`, CDW and CDI). ms-msoutcomes has no relapse
dates (only days since the last relapse), so it is run without relapses; msprog's toy
cohort with its relapse file.
"""
import pandas as pd
from pymsprog import MSprog

COLUMNS = ['ID', 'nevent', 'event_type', 'date', 'bl_date', 'conf84_date']


def run(visits, subj, date, relapses, out_prefix):
    for baseline in ['fixed', 'roving']:
        kw = {}
        if relapses is not None:
            kw = dict(relapse=relapses, rsubj_col='id', rdate_col='date')
        _, results = MSprog(visits, subj_col=subj, value_col='EDSS', date_col=date, outcome='edss',
                            event='firstCDW' if baseline == 'fixed' else 'multiple', baseline=baseline, include_dates=True, verbose=0, **kw)
        results = results[results['nevent'] > 0].rename(columns={subj: 'ID'})[COLUMNS]
        for c in ['date', 'bl_date', 'conf84_date']:
            results[c] = pd.to_datetime(results[c]).dt.strftime('%Y-%m-%d')
        results.to_csv(f'{out_prefix}-{baseline}.csv', index=False)
        print(out_prefix, baseline, results['event_type'].value_counts().to_dict())


outcomes = pd.read_csv('../ms-msoutcomes/sampledata.csv').dropna(subset=['EDSS'])
run(outcomes, 'ID', 'dateEDSS', None, 'msoutcomes')
toy = pd.read_csv('../ms-msprog/toydata_visits.csv')
toy_relapses = pd.read_csv('../ms-msprog/toydata_relapses.csv')
run(toy, 'id', 'date', toy_relapses, 'msprog-toy')
